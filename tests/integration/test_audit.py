"""`depository audit` names what was altered (SQLite and PostgreSQL); the CLI prints one line per finding.

The exhaustive version (every mutation class, the integrator's refusal) is tests/faults/test_tamper_log.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sqlalchemy import select, update

from depository.audit import audit
from depository.models import CheckpointRow, LogEntry, TileRow
from tests.logfill import fill, trust


def test_clean_log_audits_ok(services: Any) -> None:
    fill(services, 700)
    rep = audit(services.engine, trust(services))
    assert rep.ok, rep.problems
    assert rep.entries == 700 and rep.deposits == 700 and rep.checkpoints == 4 and rep.tiles_checked >= 3


def test_altered_leaf_is_named(services: Any) -> None:
    fill(services, 700)
    with services.engine.begin() as conn:
        data = conn.execute(select(LogEntry.data).where(LogEntry.idx == 345)).scalar_one()
        forged = data.replace(b"kind other", b"kind contract")
        conn.execute(update(LogEntry).where(LogEntry.idx == 345).values(data=forged))
    rep = audit(services.engine, trust(services))
    assert any(p.startswith("log_tiles/0/1/hashes[89]") and "log entry 345" in p for p in rep.problems), rep.problems
    assert any("/kind: got 'other', want 'contract'" in p for p in rep.problems), rep.problems


def test_altered_inner_node_is_named(services: Any) -> None:
    fill(services, 700)
    with services.engine.begin() as conn:
        row = conn.execute(select(TileRow).where(TileRow.level == 0, TileRow.idx == 1)).one()
        inner = bytearray(row.inner)
        inner[5] ^= 1
        conn.execute(update(TileRow).where(TileRow.level == 0, TileRow.idx == 1).values(inner=bytes(inner)))
    rep = audit(services.engine, trust(services))
    assert [p.split(":")[0] for p in rep.problems] == ["log_tiles/0/1/inner[0]"], rep.problems


def test_checkpoint_root_swapped_with_valid_signature_elsewhere_is_caught(services: Any) -> None:
    fill(services, 700)
    with services.engine.begin() as conn:
        a = conn.execute(select(CheckpointRow).where(CheckpointRow.size == 300)).one()
        conn.execute(update(CheckpointRow).where(CheckpointRow.size == 600).values(root_hash=a.root_hash))
    rep = audit(services.engine, trust(services))
    assert any(p.startswith("checkpoints/seq 2/root_hash") and "signed note" in p for p in rep.problems), rep.problems


def _cli(services: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DEPOSITORY_HOME": str(services.config.home),
           "DEPOSITORY_DATABASE_URL": services.config.effective_database_url,
           "DEPOSITORY_LOG_ORIGIN": services.config.log_origin, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                          check=False)


def test_audit_cli_one_line_per_finding_and_json(services: Any) -> None:
    fill(services, 10)
    ok = _cli(services, "audit")
    assert ok.returncode == 0 and "audit ok" in ok.stdout, ok.stdout + ok.stderr
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 3).values(data=b"x\n"))
        conn.execute(update(LogEntry).where(LogEntry.idx == 5).values(identity="someone-else"))
    out = _cli(services, "audit")
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    lines = out.stdout.splitlines()
    assert any(line.startswith("log_entries/3/data: got") for line in lines), lines
    assert any(line.startswith("log_entries/5/identity: got 'someone-else'") for line in lines), lines
    assert out.stderr.startswith("audit failed: ")
    js = _cli(services, "audit", "--json")
    assert js.returncode == 1
    report = json.loads(js.stdout)
    assert report["ok"] is False and {f["where"] for f in report["findings"]} >= {"log_entries/3/data"}


def test_incremental_audit_starts_at_a_checkpoint(services: Any) -> None:
    fill(services, 700)
    first = _cli(services, "audit")
    assert first.returncode == 0, first.stdout + first.stderr
    fill(services, 300)
    inc = _cli(services, "audit", "--since-checkpoint", "last", "--json")
    report = json.loads(inc.stdout)
    assert inc.returncode == 0 and report["mode"] == "incremental", inc.stdout
    assert report["from_size"] == 700 and report["entries"] == 300 and report["tree_size"] == 1000
    # An alteration after the starting checkpoint is still found; one wholly before it is left to full audits.
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 800).values(identity="x"))
    assert _cli(services, "audit", "--since-checkpoint", "3").returncode == 1
    assert _cli(services, "audit", "--since-checkpoint", "4").returncode == 0
