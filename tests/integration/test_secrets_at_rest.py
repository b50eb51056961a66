"""Secrets and files at rest (issue 18), on SQLite and PostgreSQL: webhook secrets are sealed under the
master key (a scan of the raw database finds none, yet deliveries verify), rotation replaces them, and the
home, database, WAL, shared memory and content store are the service's alone."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from depository.secretbox import SecretBox
from tests.conftest import auth


def _raw_dump(services: Any, db_url: str) -> bytes:
    """Every byte the database holds for us: the SQLite files as they are on disk, or every row of every
    table on PostgreSQL."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        return b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal") if Path(f"{path}{s}").exists())
    md = MetaData()
    md.reflect(services.engine)
    out = []
    with services.engine.connect() as conn:
        for table in md.sorted_tables:
            out += [repr(tuple(r)).encode() for r in conn.execute(select(table))]
    return b"\n".join(out)


def test_webhook_secrets_are_sealed_and_rotatable(services: Any, client: Any, tenant: tuple[str, str],
                                                  db_url: str) -> None:
    h = auth(tenant[1])
    created = client.post("/v1/webhooks", headers=h, json={"url": "https://hooks.example/in"})
    assert created.status_code == 201
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    rotated = client.post(f"/v1/webhooks/{created.json['id']}/rotate-secret", headers=h)
    assert rotated.status_code == 200 and rotated.json["secret"] != secret
    listed = client.get("/v1/webhooks", headers=h).json["endpoints"]
    assert listed and all("secret" not in e for e in listed)
    dump = _raw_dump(services, db_url)
    for s in (secret, rotated.json["secret"]):
        assert s.encode() not in dump and s[6:].encode() not in dump
    assert b"enc1:" in dump
    notifier = services.monitoring.notifier
    ep = notifier.endpoint(tenant[0], created.json["id"])
    assert notifier.signing_secret(ep) == rotated.json["secret"]
    # another tenant cannot rotate it
    _, other = services.tenants.create("Other")
    assert client.post(f"/v1/webhooks/{created.json['id']}/rotate-secret", headers=auth(other)).status_code == 404


def test_plain_secrets_of_an_older_version_are_sealed(services: Any, tenant: tuple[str, str], db_url: str) -> None:
    from sqlalchemy import update

    from depository.monitoring.models import EndpointRow

    notifier = services.monitoring.notifier
    row, _ = notifier.create_endpoint(tenant[0], "webhook", "https://hooks.example/old")
    legacy = "whsec_" + "A" * 32
    with services.engine.begin() as conn:
        conn.execute(update(EndpointRow).where(EndpointRow.id == row.id).values(secret=legacy))
    assert notifier.signing_secret(notifier.endpoint(tenant[0], row.id)) == legacy
    assert notifier.seal_plain_secrets() == 1
    assert legacy.encode() not in _raw_dump(services, db_url)
    assert notifier.signing_secret(notifier.endpoint(tenant[0], row.id)) == legacy


def test_a_sealed_value_opens_only_in_its_place_and_under_its_key(tmp_path: Path) -> None:
    from depository.errors import IntegrityError

    box = SecretBox(lambda: b"k" * 32)
    sealed = box.seal("whsec_x", "monitoring_endpoints/whk_1/secret")
    assert box.open(sealed, "monitoring_endpoints/whk_1/secret") == "whsec_x"
    with pytest.raises(IntegrityError):
        box.open(sealed, "monitoring_endpoints/whk_2/secret")
    with pytest.raises(IntegrityError, match="sealed under master key"):
        SecretBox(lambda: b"j" * 32).open(sealed, "monitoring_endpoints/whk_1/secret")


def test_smtp_url_sealed_by_the_cli(config: Any, services: Any, tmp_path: Path) -> None:
    env = {"DEPOSITORY_HOME": str(config.home), "PATH": "/usr/bin:/bin"}
    url = "smtp://mailer:s3cret-pass@127.0.0.1:2525"
    out = subprocess.run([sys.executable, "-m", "cli.main", "secret", "seal", "smtp_url"], input=url + "\n",
                         capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    sealed = out.stdout.strip()
    assert sealed.startswith("enc1:") and "s3cret" not in sealed
    box = services.monitoring.notifier.box
    assert box.open(sealed, "config/smtp_url") == url


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_files_are_private(tmp_path: Path) -> None:
    from depository.app import create_app
    from depository.config import load_config
    from depository.wiring import build_services, init_home

    old = os.umask(0o022)  # what a default shell gives: the code must not rely on the umask
    try:
        config = load_config(env={}, home=tmp_path / "home", batch_interval_ms=20, run_integrator=False)
        init_home(config)
        s = build_services(config)
        try:
            wrapped = s.content.new_tenant_key("aes-256-gcm")
            _, key = s.tenants.create("Keeper", store_content=True, wrapped_content_key=wrapped)
            client = create_app(config, s).test_client()
            r = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                            data={"kind": "other", "file": (io.BytesIO(b"private"), "p.txt")})
            assert r.status_code == 201
            db = config.home / "depository.db"
            assert _mode(config.home) == 0o700
            for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                assert f.exists() and _mode(f) == 0o600, (f, oct(_mode(f)))
            assert _mode(config.content_dir) == 0o700
            stored = list(config.content_dir.rglob("*.bin"))
            assert stored and all(_mode(p) == 0o600 and _mode(p.parent) == 0o700 for p in stored)
            assert _mode(config.keys_dir / "master.key") == 0o600
        finally:
            s.close()
        # An older home made with 0644 files is tightened when the database is next opened.
        os.chmod(config.home / "depository.db", 0o644)
        s = build_services(config)
        s.close()
        assert _mode(config.home / "depository.db") == 0o600
    finally:
        os.umask(old)
