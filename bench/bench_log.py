"""Log benchmarks (issue 2): integration throughput, proof latency from storage, tree bytes per leaf,
on SQLite and PostgreSQL, side by side with pymerkle 7's SqliteTree in the same run.

    python bench/bench_log.py [--leaves 1000000] [--proof-leaves 10000000] [--backends sqlite,postgresql]

Method: entries are sequenced in chunks of 10,000 (one transaction each, as the deposit path does), then
integrated in batches of `--batch` (each batch: read leaves, hash, extend tiles, sign a checkpoint with
Ed25519 + SM2, commit). Integration throughput counts only the integrate phase. Proof latency is the median
(and p99) of 1,000 random inclusion and 1,000 consistency proofs served from storage (a database query for
the tiles, then the rehash), on a tree of `--proof-leaves`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from depository.config import load_config
from depository.log import Log
from depository.models import TileRow
from depository.wiring import build_services, init_home

PG = os.environ.get("DEPOSITORY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fresh_pg(name: str) -> str:
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG.rsplit("/", 1)[0] + "/" + name


def sequence(log: Log, start: int, n: int, chunk: int = 10_000) -> float:
    t = time.perf_counter()
    i = start
    while i < start + n:
        m = min(chunk, start + n - i)
        with log.engine.begin() as conn:
            log.sequence(conn, [(f"e{j}", b"evidence-deposit/v1\nid e%d\nsalt %032x\n" % (j, j))
                                for j in range(i, i + m)])
        i += m
    return time.perf_counter() - t


def integrate(log: Log, batch: int) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    while log.integrate(batch) is not None:
        n += 1
    return time.perf_counter() - t, n


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def proofs(log: Log, size: int, rounds: int = 1000, seed: int = 1) -> dict[str, float]:
    """Median and p99 (ms) of `rounds` random inclusion and consistency proofs served from storage."""
    rnd = random.Random(seed)
    inc, con = [], []
    for _ in range(rounds):
        i = rnd.randrange(size)
        t = time.perf_counter()
        log.inclusion_proof(i, size)
        inc.append(time.perf_counter() - t)
        s1 = rnd.randrange(1, size)
        t = time.perf_counter()
        log.consistency_proof(s1, size)
        con.append(time.perf_counter() - t)
    return {"inclusion_median_ms": statistics.median(inc) * 1e3, "inclusion_p99_ms": pct(inc, 0.99) * 1e3,
            "consistency_median_ms": statistics.median(con) * 1e3, "consistency_p99_ms": pct(con, 0.99) * 1e3}


def run_backend(backend: str, leaves: int, proof_leaves: int, batch: int, tmp: Path) -> dict[str, object]:
    url = f"sqlite:///{tmp / backend / 'bench.db'}" if backend == "sqlite" else fresh_pg("dep_bench")
    config = load_config(env={}, home=tmp / backend, database_url=url)
    init_home(config)
    s = build_services(config, notary=False)
    try:
        seq_s = sequence(s.log, 0, leaves)
        int_s, batches = integrate(s.log, batch)
        out: dict[str, object] = {"backend": backend, "leaves": leaves, "batch": batch,
                                  "sequence_per_s": leaves / seq_s, "integrate_per_s": leaves / int_s,
                                  "checkpoints": batches}
        out.update({f"at_{leaves}_{k}": v for k, v in proofs(s.log, leaves).items()})
        if proof_leaves > leaves:
            done = leaves
            while done < proof_leaves:  # in steps, under the sequencer's back-pressure limit
                step = min(1_000_000, proof_leaves - done)
                sequence(s.log, done, step, chunk=50_000)
                integrate(s.log, 200_000)
                done += step
            out.update({f"at_{proof_leaves}_{k}": v for k, v in proofs(s.log, proof_leaves).items()})
        size = max(leaves, proof_leaves)
        with s.engine.connect() as conn:
            tile_bytes = conn.execute(select(func.sum(func.length(TileRow.hashes) + func.length(TileRow.inner))
                                             )).scalar_one()
        out["tree_bytes_per_leaf"] = int(tile_bytes) / size
        return out
    finally:
        s.close()


def run_pymerkle(leaves: int, tmp: Path) -> dict[str, object]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(tmp / "pymerkle.db"))
    t = time.perf_counter()
    chunk = 10_000
    for i in range(0, leaves, chunk):
        tree.append_entries([b"evidence-deposit/v1\nid e%d\nsalt %032x\n" % (j, j) for j in range(i, i + chunk)])
    append_s = time.perf_counter() - t
    rnd = random.Random(1)
    inc, con = [], []
    for _ in range(200):
        i = rnd.randrange(1, leaves + 1)
        t = time.perf_counter()
        tree.prove_inclusion(i, leaves)
        inc.append(time.perf_counter() - t)
        s1 = rnd.randrange(1, leaves)
        t = time.perf_counter()
        tree.prove_consistency(s1, leaves)
        con.append(time.perf_counter() - t)
    tree.close()
    return {"backend": "pymerkle 7 SqliteTree", "leaves": leaves, "append_per_s": leaves / append_s,
            "inclusion_median_ms": statistics.median(inc) * 1e3,
            "consistency_median_ms": statistics.median(con) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--proof-leaves", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql,pymerkle")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        tmp = Path(d)
        for b in args.backends.split(","):
            res = run_pymerkle(args.leaves, tmp) if b == "pymerkle" else run_backend(
                b, args.leaves, args.proof_leaves, args.batch, tmp)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}, flush=True)


if __name__ == "__main__":
    main()
