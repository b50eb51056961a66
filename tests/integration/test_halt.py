"""While integration is halted (issue 14): /healthz and /metrics report it with its reason, deposits are
accepted, durable and say so, `depository status` prints one clear line and exits 1, and integration
resumes only after `depository audit` passes or an operator runs `depository log resume` (SQLite and
PostgreSQL; the real app, the real CLI in a subprocess)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import func, select

from depository.integrity import IntegrationHalted
from depository.models import DepositRow, LogEntry, LogHalt, TileRow
from tests.conftest import auth
from tests.logfill import fill


def _cli(services: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DEPOSITORY_HOME": str(services.config.home),
           "DEPOSITORY_DATABASE_URL": services.config.effective_database_url,
           "DEPOSITORY_LOG_ORIGIN": services.config.log_origin, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                          check=False)


def _deposit(client: Any, key: str, n: int) -> Any:
    doc = f"halted lease {n}".encode()
    return client.post("/v1/deposits", headers=auth(key),
                       json={"kind": "other", "sha256": hashlib.sha256(doc).hexdigest(),
                             "sm3": hashlib.new("sm3", doc).hexdigest(), "metadata": {"title": f"lease {n}"}})


def _tamper_edge_tile(services: Any) -> None:
    with services.engine.begin() as conn:
        tile = conn.execute(select(TileRow).where(TileRow.level == 0, TileRow.idx == 0)).one()
        hashes = bytearray(tile.hashes)
        hashes[0] ^= 1
        conn.execute(TileRow.__table__.update().where(TileRow.level == 0, TileRow.idx == 0)
                     .values(hashes=bytes(hashes)))


def test_halt_is_reported_everywhere_and_deposits_wait(services: Any, client: Any,
                                                       tenant: tuple[str, str]) -> None:
    fill(services, 20)
    assert client.get("/healthz").get_json()["checks"]["integrity"] == {"status": "ok"}
    assert "depository_log_integration_halted 0" in client.get("/metrics").get_data(as_text=True)
    size_before = services.log.sizes()[0]
    checkpoints_before = services.log.latest_checkpoint().id

    _tamper_edge_tile(services)
    first = _deposit(client, tenant[1], 1)
    assert first.status_code == 201 and "notice" not in first.get_json()
    with pytest.raises(IntegrationHalted):
        services.log.integrate(1000)
    services.log.halts._forget()  # other processes see it within HALT_CACHE_S; this test does not wait

    # Nothing was signed.
    assert services.log.latest_checkpoint().id == checkpoints_before
    assert services.log.sizes()[0] == size_before

    health = client.get("/healthz")
    check = health.get_json()["checks"]["integrity"]
    assert health.status_code == 503 and health.get_json()["status"] == "degraded"
    assert check["status"] == "halted" and "tile 0/0" in check["reason"] and check["tree_size"] == size_before

    metrics = client.get("/metrics").get_data(as_text=True)
    assert "depository_log_integration_halted 1" in metrics
    assert f'depository_log_integration_halted_info{{tree_size="{size_before}",reason="' in metrics

    # Deposits go on, durably, and their answers say integration is halted.
    second = _deposit(client, tenant[1], 2)
    body = second.get_json()
    assert second.status_code == 201 and "halted" in body["notice"]
    assert second.headers["Depository-Integration"].startswith("halted; since=")
    fetched = client.get(f"/v1/deposits/{body['id']}", headers=auth(tenant[1]))
    assert fetched.status_code == 200 and fetched.get_json()["status"] == "pending"
    assert "notice" in fetched.get_json()
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DepositRow)
                            .where(DepositRow.id == body["id"])).scalar_one() == 1
        assert conn.execute(select(LogEntry.idx).where(LogEntry.idx == body["leaf_index"])).scalar() is not None

    # The operator sees one clear line; an audit that still finds the damage does not resume.
    status = _cli(services, "status")
    assert status.returncode == 1, status.stdout + status.stderr
    halted_lines = [ln for ln in status.stdout.splitlines() if ln.startswith("INTEGRATION HALTED")]
    assert len(halted_lines) == 1 and "tile 0/0" in halted_lines[0]
    assert _cli(services, "audit").returncode == 1
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LogHalt)
                            .where(LogHalt.cleared_at.is_(None))).scalar_one() == 1

    # Repair the tile (an operator restoring from backup); the audit passes and clears the halt.
    _tamper_edge_tile(services)
    audited = _cli(services, "audit")
    assert audited.returncode == 0 and "integration resumes" in audited.stdout, audited.stdout + audited.stderr
    services.log.halts._forget()
    cp = services.log.integrate(1000)
    assert cp is not None and cp.size == size_before + 2  # both waiting deposits, none lost
    assert client.get("/healthz").get_json()["checks"]["integrity"] == {"status": "ok"}
    assert "notice" not in _deposit(client, tenant[1], 3).get_json()
    assert _cli(services, "status").returncode == 0


def test_operator_resume_is_recorded(services: Any) -> None:
    fill(services, 5)
    services.log.halts.raise_halt(5, "checkpoints/seq 1: a disk error the operator has since repaired")
    services.log.halts._forget()
    with pytest.raises(IntegrationHalted):
        services.log.integrate(10)
    refused = _cli(services, "log", "resume")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr  # --reason is required
    done = _cli(services, "log", "resume", "--reason", "restored tiles from the 02:00 backup")
    assert done.returncode == 0 and "cleared" in done.stdout, done.stdout + done.stderr
    with services.engine.connect() as conn:
        row = conn.execute(select(LogHalt)).one()
    assert row.cleared_at is not None and row.clear_reason == "restored tiles from the 02:00 backup"
    assert row.cleared_by
    assert _cli(services, "log", "resume", "--reason", "again").stdout.startswith("no halt is open")
