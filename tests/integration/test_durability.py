"""A 2xx means committed: SIGKILL the server in the middle of a batch load, restart it, and every
acknowledged deposit is in the log exactly once with its original leaf (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from depository.audit import audit
from depository.client import ClientError, DepositoryClient
from depository.config import load_config
from depository.models import DepositRow, LogEntry
from depository.wiring import build_services
from evidence.leaf import LeafData
from tests.logfill import trust
from tests.procs import Proc, cli_env, free_port, run_cli


def test_sigkill_during_batch_load_loses_no_acknowledged_deposit(tmp_path: Path, db_url: str) -> None:
    env = cli_env(tmp_path / "home", database_url=db_url, batch_interval_ms="50")
    run_cli(["init"], env)
    key = json.loads(run_cli(["tenant", "create", "Platform"], env).stdout)["api_key"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve1.log")
    server.wait_http(url + "/healthz")
    acked: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        c = DepositoryClient(url, key, timeout_s=10)
        while not stop.is_set():
            items = [{"kind": "other", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32)}
                     for _ in range(200)]
            try:
                got = c.deposit_batch(items)
            except ClientError as e:
                errors.append(str(e))  # the kill: no answer means no acknowledgement
                time.sleep(0.05)
                continue
            with lock:
                for sent, d in zip(items, got, strict=True):
                    assert d["sha256"] == sent["sha256"]
                    acked[d["id"]] = d

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    server.stop()
    assert len(acked) >= 1500, errors[:3]

    restarted = Proc(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve2.log")
    try:
        restarted.wait_http(url + "/healthz")
        s = build_services(load_config(env=env), notary=False)
        try:
            _size, nxt = s.log.sizes()
            assert s.log.wait_for_size(nxt, 30)
            with s.engine.connect() as conn:
                rows = {r.id: r for r in conn.execute(select(DepositRow).where(DepositRow.id.in_(list(acked))))}
                entries = dict(conn.execute(select(LogEntry.identity, LogEntry.idx)).all())
                n_entries = conn.execute(select(func.count()).select_from(LogEntry)).scalar_one()
            found = 0
            for dep_id, d in acked.items():
                row = rows[dep_id]
                assert row.leaf_index == d["leaf_index"] == entries[dep_id]
                leaf = LeafData.from_bytes(s.log.leaf_data(row.leaf_index))
                assert leaf.id == dep_id and leaf.sha256.hex() == d["sha256"] and leaf.sm3.hex() == d["sm3"]
                found += 1
            assert n_entries == len(entries)  # each identity exactly once
            rep = audit(s.engine, trust(s))
            assert rep.ok, rep.problems
            print(f"acknowledged {len(acked)}, found {found}, log entries {n_entries}, tree {rep.tree_size}")
            assert found == len(acked)
        finally:
            s.close()
    finally:
        restarted.stop()
