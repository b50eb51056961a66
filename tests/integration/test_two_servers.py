"""Two `depository serve` processes on one PostgreSQL database never fork the log: one integrator at a
time (advisory lock), and the compare-and-set on the tree size refuses a second writer anyway."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from depository.audit import audit
from depository.client import DepositoryClient
from depository.config import load_config
from depository.wiring import build_services
from evidence import merkle
from evidence.checkpoint import SignedCheckpoint
from tests.logfill import trust
from tests.procs import Proc, cli_env, free_port, run_cli


def test_two_servers_one_postgres_never_fork(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    env = cli_env(home, database_url=pg_url, batch_interval_ms="30", log_origin="two.example/log")
    run_cli(["init"], env)
    key = json.loads(run_cli(["tenant", "create", "Acme"], env).stdout)["api_key"]
    ports = [free_port(), free_port()]
    procs = [Proc(["serve", "--port", str(p), "--workers", "2", "--threads", "4"], env, tmp_path / f"s{p}.log")
             for p in ports]
    try:
        for proc, port in zip(procs, ports, strict=True):
            proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        acked: list[str] = []
        lock = threading.Lock()

        def load(port: int, worker: int) -> None:
            c = DepositoryClient(f"http://127.0.0.1:{port}", key)
            for b in range(8):
                items = [{"kind": "other", "sha256": hashlib.sha256(f"{port}-{worker}-{b}-{i}".encode()).hexdigest(),
                          "sm3": "0" * 64} for i in range(100)]
                got = c.deposit_batch(items)
                with lock:
                    acked.extend(d["id"] for d in got)

        threads = [threading.Thread(target=load, args=(p, w)) for p in ports for w in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c = DepositoryClient(f"http://127.0.0.1:{ports[0]}", key)
        last = c.get(acked[-1])
        assert last["leaf_index"] < len(acked)
        # wait for everything to be integrated
        s = build_services(load_config(env=env), notary=False)
        try:
            assert s.log.wait_for_size(len(acked), 30)
            rep = audit(s.engine, trust(s))
            assert rep.ok, rep.problems
            assert rep.tree_size == len(acked) == len(set(acked)) == 4800
            # every checkpoint is consistent with the latest
            from sqlalchemy import select

            from depository.models import CheckpointRow
            with s.engine.connect() as conn:
                notes = [r.note for r in conn.execute(select(CheckpointRow.note).order_by(CheckpointRow.size))]
            latest = SignedCheckpoint.from_text(notes[-1]).checkpoint
            for note in notes[1:-1]:
                cp = SignedCheckpoint.from_text(note).checkpoint
                proof = s.log.consistency_proof(cp.size, latest.size)
                merkle.verify_consistency(merkle.SHA256, cp.size, latest.size, proof, cp.root_hash,
                                          latest.root_hash)
            sizes = [SignedCheckpoint.from_text(n).checkpoint.size for n in notes]
            assert sizes == sorted(set(sizes))
        finally:
            s.close()
    finally:
        for proc in procs:
            proc.stop()
