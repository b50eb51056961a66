"""Console accounts on SQLite and PostgreSQL: argon2 storage, sign-in, lockout, sessions, the CLI command,
and the HTTP gate (sign-in redirect, CSRF, cookie flags) through Flask's test client."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from depository.console.models import ConsoleSessionRow, UserRow
from depository.console.users import MAX_FAILURES, LockedOut, SignInFailed, Users
from depository.errors import BadRequest, Conflict

PASSWORD = "a long enough passphrase"


@pytest.fixture
def users(services: Any) -> Users:
    return Users(services.engine)


def test_password_is_stored_as_argon2id_and_checked(services: Any, users: Users, tenant: tuple[str, str]) -> None:
    u = users.create(tenant[0], " Legal@Example.COM ", PASSWORD, "legal")
    assert u.email == "legal@example.com" and u.can_upload
    with services.engine.connect() as conn:
        stored = conn.execute(select(UserRow.password_hash).where(UserRow.id == u.id)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.authenticate("LEGAL@example.com", PASSWORD, "10.0.0.1") == u
    with pytest.raises(SignInFailed):
        users.authenticate("legal@example.com", PASSWORD + "x", "10.0.0.1")
    with pytest.raises(Conflict):
        users.create(tenant[0], "legal@example.com", PASSWORD, "viewer")
    with pytest.raises(BadRequest):
        users.create(tenant[0], "v@example.com", PASSWORD, "owner")
    with pytest.raises(BadRequest):
        users.create(tenant[0], "v@example.com", "short", "viewer")
    with pytest.raises(BadRequest):
        users.create("t_missing", "v@example.com", PASSWORD, "viewer")
    assert not users.create(tenant[0], "v@example.com", PASSWORD, "viewer").can_upload


def test_lockout_after_failures_and_for_unknown_emails(users: Users, tenant: tuple[str, str]) -> None:
    users.create(tenant[0], "a@example.com", PASSWORD, "admin")
    users.authenticate("a@example.com", PASSWORD, "10.0.0.2")  # earlier success: counting starts after it
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInFailed):
            users.authenticate("a@example.com", "guess", "10.0.0.2")
    with pytest.raises(LockedOut, match="try again in 15 minutes") as e:
        users.authenticate("a@example.com", PASSWORD, "10.0.0.2")
    assert e.value.retry_after is not None and 14 * 60 < e.value.retry_after <= 15 * 60
    later = datetime.now(UTC) + timedelta(minutes=16)
    checks = users.sign_in_checks("a@example.com", "10.0.0.2", None)
    assert users.throttle.reserve(checks, now=later).allowed  # the window has passed
    for _ in range(MAX_FAILURES):  # an unknown e-mail locks the same way: lockout reveals no accounts
        with pytest.raises(SignInFailed):
            users.authenticate("nobody@example.com", "guess", "10.0.0.3")
    with pytest.raises(LockedOut):
        users.authenticate("nobody@example.com", "guess", "10.0.0.3")


def test_sessions_end_on_sign_out_and_expiry(services: Any, users: Users, tenant: tuple[str, str]) -> None:
    u = users.create(tenant[0], "s@example.com", PASSWORD, "viewer")
    token = users.start_session(u)
    assert users.session_user(token) == u
    with services.engine.connect() as conn:
        assert token not in str(conn.execute(select(ConsoleSessionRow.token_hash)).all())
    users.end_session(token)
    assert users.session_user(token) is None
    token = users.start_session(u)
    with services.engine.begin() as conn:
        conn.execute(update(ConsoleSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert users.session_user(token) is None
    assert users.session_user("") is None and users.session_user("x" * 500) is None


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert m, html[:500]
    return m.group(1)


def test_http_gate_csrf_and_cookies(client: Any, services: Any, users: Users, tenant: tuple[str, str],
                                    config: Any) -> None:
    users.create(tenant[0], "web@example.com", PASSWORD, "legal")
    r = client.get("/console/deposits")
    assert r.status_code == 302 and "/console/sign-in?next=/console/deposits" in r.headers["Location"]
    page = client.get("/console/sign-in")
    assert "dep_pre=" in page.headers["Set-Cookie"] and "HttpOnly" in page.headers["Set-Cookie"]
    token = _token(page.text)
    no_csrf = client.post("/console/sign-in", data={"email": "web@example.com", "password": PASSWORD})
    assert no_csrf.status_code == 403
    ok = client.post("/console/sign-in", data={"email": "web@example.com", "password": PASSWORD,
                                               "csrf_token": token, "next": "https://evil.example/"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/console/deposits"  # no open redirect
    cookie = next(c for c in ok.headers.getlist("Set-Cookie") if c.startswith("dep_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    upload = client.get("/console/upload")
    token = _token(upload.text)
    r = client.post("/console/deposits", data={"kind": "other", "file": (io.BytesIO(b"x"), "x.txt")},
                    headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 403
    r = client.post("/console/deposits", data={"kind": "other", "file": (io.BytesIO(b"x"), "x.txt")},
                    headers={"X-Requested-With": "XMLHttpRequest", "X-CSRF-Token": token})
    assert r.status_code == 201 and r.json["url"] == f"/console/deposits/{r.json['id']}"
    assert services.deposits.get(tenant[0], r.json["id"]).filename == "x.txt"
    # Secure cookies for anything but plain http on a loopback host.
    secure = client.post("/console/sign-in", base_url="https://depository.example",
                         data={"email": "web@example.com", "password": PASSWORD, "csrf_token": "0" * 64})
    assert secure.status_code == 403
    r = client.get("/console/sign-in", base_url="https://depository.example")
    assert "Secure" in r.headers["Set-Cookie"]


def test_cli_user_create(config: Any, services: Any, tenant: tuple[str, str], tmp_path: Path) -> None:
    env = {"DEPOSITORY_HOME": str(config.home), "PATH": "/usr/bin:/bin",
           "DEPOSITORY_DATABASE_URL": config.effective_database_url}
    out = subprocess.run([sys.executable, "-m", "cli.main", "user", "create", tenant[0], "cli@example.com",
                          "--role", "viewer", "--password-stdin"], input=PASSWORD + "\n", capture_output=True,
                         text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert '"role": "viewer"' in out.stdout
    assert Users(services.engine).authenticate("cli@example.com", PASSWORD, "127.0.0.1").role == "viewer"
    again = subprocess.run([sys.executable, "-m", "cli.main", "user", "create", tenant[0], "cli@example.com",
                            "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, env=env,
                           cwd=Path(__file__).resolve().parents[2])
    assert again.returncode != 0 and "already exists" in again.stderr
