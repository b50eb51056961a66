"""Sign-in and API-key throttling on SQLite and PostgreSQL (issues 18 and 21): the limit holds under
concurrency against a real threaded HTTP server, a stranger cannot lock the owner out, the client address
comes from X-Forwarded-For only behind a trusted proxy, and every decision is in the audit trail."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from depository.console.users import MAX_FAILURES, MAX_FAILURES_PER_IP, Users
from depository.models import ThrottleRow
from depository.tenants import MAX_KEY_FAILURES_PER_ADDRESS
from tests.conftest import auth

PASSWORD = "a long enough passphrase"


def _make(tmp_path: Path, db_url: str, **overrides: Any) -> tuple[Any, Any, Any]:
    from depository.app import create_app
    from depository.config import load_config
    from depository.wiring import build_services, init_home

    config = load_config(env={}, home=tmp_path / "home", database_url=db_url, batch_interval_ms=20,
                         log_origin="test.example/log", run_integrator=False, **overrides)
    init_home(config)
    services = build_services(config)
    app = create_app(config, services)
    app.config["TESTING"] = True
    app.config["CONSOLE_COOKIE_SECURE"] = False
    return config, services, app


@pytest.fixture
def proxied(tmp_path: Path, db_url: str) -> Any:
    """An app behind a trusted proxy on 127.0.0.1 (the test client's address)."""
    _, services, app = _make(tmp_path, db_url, trusted_proxies=["127.0.0.1/32"])
    yield services, app
    services.close()


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert m, html[:500]
    return m.group(1)


def _sign_in(client: Any, email: str, password: str, client_ip: str) -> Any:
    headers = {"X-Forwarded-For": client_ip}
    token = _token(client.get("/console/sign-in", headers=headers).text)
    return client.post("/console/sign-in", headers=headers,
                       data={"email": email, "password": password, "csrf_token": token})


def test_a_stranger_cannot_lock_out_the_owner(proxied: Any) -> None:
    services, app = proxied
    users = Users(services.engine)
    tenant_id, _ = services.tenants.create("Law Firm")
    users.create(tenant_id, "owner@example.com", PASSWORD, "legal")
    owner, stranger = app.test_client(), app.test_client()
    assert _sign_in(owner, "owner@example.com", PASSWORD, "198.51.100.7").status_code == 303  # a known device now
    owner.delete_cookie("dep_session")  # signed out; the known-device cookie stays
    codes = Counter(_sign_in(stranger, "owner@example.com", f"guess {i}", "203.0.113.66").status_code
                    for i in range(3 * MAX_FAILURES))
    assert codes == {401: MAX_FAILURES, 429: 2 * MAX_FAILURES}, codes
    # The owner's browser still signs in with the right password, from the same or another address.
    assert _sign_in(owner, "owner@example.com", PASSWORD, "198.51.100.7").status_code == 303
    events = services.tenants.throttle.events(subject="owner@example.com")
    # A stranger's guess from a *new* address waits for the account's growing delay (1 s, then 2 s ...).
    with services.engine.connect() as conn:
        last = conn.execute(select(ThrottleRow.last_at).where(
            ThrottleRow.key == "signin-account:owner@example.com")).scalar_one()
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    checks = Users.sign_in_checks("owner@example.com", "203.0.113.67", None)
    refused = users.throttle.reserve(checks, now=last + timedelta(milliseconds=500))
    assert not refused.allowed and refused.rule == "account" and refused.retry_after_s == 1
    assert users.throttle.reserve(checks, now=last + timedelta(seconds=1.5)).allowed
    assert not users.throttle.reserve(checks, now=last + timedelta(seconds=2.5)).allowed  # now 2 s
    decisions = Counter((e.ip, e.decision) for e in events)
    assert decisions[("203.0.113.66", "failed")] == MAX_FAILURES
    assert decisions[("203.0.113.66", "refused")] == 2 * MAX_FAILURES
    assert decisions[("198.51.100.7", "ok")] == 2


def test_one_address_cannot_lock_out_everyone_behind_the_proxy(proxied: Any) -> None:
    services, app = proxied
    users = Users(services.engine)
    tenant_id, _ = services.tenants.create("Law Firm")
    users.create(tenant_id, "colleague@example.com", PASSWORD, "viewer")
    attacker = app.test_client()
    for i in range(MAX_FAILURES_PER_IP // MAX_FAILURES):  # many e-mails, the account limits never bite
        for j in range(MAX_FAILURES):
            assert _sign_in(attacker, f"victim{i}@example.com", f"g{j}", "203.0.113.5").status_code == 401
    assert _sign_in(attacker, "other@example.com", "x", "203.0.113.5").status_code == 429  # the address
    # Everyone else reaches the server through the same proxy (127.0.0.1) and is unaffected.
    assert _sign_in(app.test_client(), "colleague@example.com", PASSWORD, "192.0.2.10").status_code == 303


def test_forwarded_for_is_ignored_from_untrusted_peers(tmp_path: Path, db_url: str) -> None:
    _, services, app = _make(tmp_path, db_url)  # no trusted proxies
    try:
        client = app.test_client()
        for i in range(MAX_FAILURES):
            r = _sign_in(client, "someone@example.com", "guess", f"10.9.9.{i}")  # a new "address" each time
            assert r.status_code == 401
        assert _sign_in(client, "someone@example.com", "guess", "10.9.9.99").status_code == 429
        ips = {e.ip for e in services.tenants.throttle.events(subject="someone@example.com")}
        assert ips == {"127.0.0.1"}
    finally:
        services.close()


def test_forwarded_chain_walks_trusted_hops_only(tmp_path: Path, db_url: str) -> None:
    from depository.proxies import TrustedProxies

    seen: list[str] = []

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["REMOTE_ADDR"])
        start_response("200 OK", [])
        return [b""]

    mw = TrustedProxies(inner, ["127.0.0.1/32", "10.0.0.0/8"])
    for peer, xff, want in [("127.0.0.1", "198.51.100.1", "198.51.100.1"),
                            ("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1"),
                            ("127.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"),
                            ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
                            ("127.0.0.1", "", "127.0.0.1")]:
        mw({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": xff, "wsgi.url_scheme": "http",
            "HTTP_HOST": "x", "SERVER_NAME": "x", "SERVER_PORT": "80"}, lambda *a: None)
        assert seen[-1] == want, (peer, xff)


@pytest.mark.parametrize("threads", [16])
def test_concurrent_wrong_passwords_never_exceed_the_limit(tmp_path: Path, db_url: str, threads: int) -> None:
    """Issue 21's race, against a real threaded server: 64 attempts (one of them the right password) at
    concurrency 16 check at most MAX_FAILURES passwords, whatever the interleaving."""
    from depository.server import run_dev_server

    _, services, app = _make(tmp_path, db_url)
    server = run_dev_server(app, "127.0.0.1", 0)
    try:
        tenant_id, _ = services.tenants.create("Law Firm")
        Users(services.engine).create(tenant_id, "target@example.com", PASSWORD, "legal")
        base = f"http://127.0.0.1:{server.server_port}"
        codes: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(threads)

        def attempt(n: int) -> None:
            with requests.Session() as c:
                token = _token(c.get(base + "/console/sign-in", timeout=30).text)
                start.wait()
                for i in range(4):
                    pw = PASSWORD if (n, i) == (threads - 1, 3) else f"wrong {n}.{i}"
                    r = c.post(base + "/console/sign-in", data={"email": "target@example.com", "password": pw,
                                                                 "csrf_token": token},
                               allow_redirects=False, timeout=60)
                    with lock:
                        codes.append(r.status_code)

        workers = [threading.Thread(target=attempt, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        counts = Counter(codes)
        assert len(codes) == 4 * threads and set(counts) <= {401, 429, 303}, counts
        assert counts[401] + counts[303] <= MAX_FAILURES, counts
        checked = [e for e in services.tenants.throttle.events(subject="target@example.com")
                   if e.decision in ("failed", "ok")]
        assert len(checked) == counts[401] + counts[303] <= MAX_FAILURES
    finally:
        server.shutdown()
        services.close()


def test_api_key_failures_are_limited_per_address(proxied: Any) -> None:
    services, app = proxied
    client = app.test_client()
    _, key = services.tenants.create("Platform")
    bad = "dpk_" + "0" * 32 + "_" + "A" * 43
    attacker = {"X-Forwarded-For": "203.0.113.77"}
    codes = Counter(client.get("/v1/deposits", headers={**auth(bad), **attacker}).status_code
                    for _ in range(MAX_KEY_FAILURES_PER_ADDRESS + 5))
    assert codes == {401: MAX_KEY_FAILURES_PER_ADDRESS, 429: 5}, codes
    r = client.get("/v1/deposits", headers={**auth(key), **attacker})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.mimetype == "application/problem+json"
    # The key itself is not locked: its owner elsewhere is served.
    assert client.get("/v1/deposits", headers={**auth(key), "X-Forwarded-For": "198.51.100.20"}).status_code == 200
    events = services.tenants.throttle.events(ip="203.0.113.77")
    assert Counter(e.decision for e in events) == {"failed": MAX_KEY_FAILURES_PER_ADDRESS, "refused": 1}
    assert all(key not in (e.subject + (e.detail or "")) for e in events)
