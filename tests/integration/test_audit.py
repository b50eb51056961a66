"""`depository audit` catches an altered leaf, tile or checkpoint and names it (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from depository.audit import audit
from depository.log import integrate_all
from depository.models import CheckpointRow, LogEntry, TileRow


def _fill(services: Any, n: int = 700) -> None:
    with services.engine.begin() as conn:
        services.log.sequence(conn, [(f"id-{i}", f"leaf {i}\n".encode()) for i in range(n)])
    integrate_all(services.log, 300)


def test_clean_log_audits_ok(services: Any) -> None:
    _fill(services)
    rep = audit(services.engine, services.keys)
    assert rep.ok, rep.problems
    assert rep.entries == 700 and rep.checkpoints == 4 and rep.tiles_checked > 0


def test_altered_leaf_is_named(services: Any) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 345).values(data=b"leaf 345 forged\n"))
    rep = audit(services.engine, services.keys)
    assert not rep.ok
    assert any("345" in p for p in rep.problems), rep.problems


def test_altered_tile_is_named(services: Any) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        row = conn.execute(select(TileRow).where(TileRow.level == 0, TileRow.idx == 1)).one()
        inner = bytearray(row.inner)
        inner[5] ^= 1
        conn.execute(update(TileRow).where(TileRow.level == 0, TileRow.idx == 1).values(inner=bytes(inner)))
    rep = audit(services.engine, services.keys)
    assert not rep.ok
    assert rep.problems[0].startswith("tile 0/1"), rep.problems


def test_altered_checkpoint_is_named(services: Any) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        cp = conn.execute(select(CheckpointRow).where(CheckpointRow.size == 600)).one()
        forged = cp.note.replace("\n600\n", "\n601\n", 1)
        conn.execute(update(CheckpointRow).where(CheckpointRow.id == cp.id).values(note=forged))
    rep = audit(services.engine, services.keys)
    assert not rep.ok
    assert rep.problems[0].startswith("checkpoint 600"), rep.problems


def test_checkpoint_root_swapped_with_valid_signature_elsewhere_is_caught(services: Any) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        a = conn.execute(select(CheckpointRow).where(CheckpointRow.size == 300)).one()
        conn.execute(update(CheckpointRow).where(CheckpointRow.size == 600).values(root_hash=a.root_hash))
    rep = audit(services.engine, services.keys)
    assert not rep.ok and rep.problems[0].startswith("checkpoint 600")


def test_audit_cli_exits_nonzero_with_one_line(tmp_path: Any, services: Any) -> None:
    import subprocess
    import sys

    _fill(services, 10)
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 3).values(data=b"x\n"))
    env = {"DEPOSITORY_HOME": str(services.config.home),
           "DEPOSITORY_DATABASE_URL": services.config.effective_database_url,
           "DEPOSITORY_LOG_ORIGIN": services.config.log_origin, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "cli.main", "audit"], env=env, capture_output=True, text=True,
                         cwd=str(tmp_path.parent), check=False)
    assert out.returncode != 0
    assert "leaf 3" in out.stderr and "Traceback" not in out.stderr
