"""Audit and checked-integration benchmark (issue 14).

    python bench/bench_audit.py [--leaves 10000000] [--backends sqlite,postgresql] [--batch 100000]

Builds a log of N real deposits (rows in `deposits` and `log_entries`, hash-only, through
`Deposits.create_many` in chunks of 10,000), integrates it in batches of `--batch` (each batch: the checks
before signing -- signed note, high-water mark, edge tiles against the signed root, independent root and
consistency proof after extending -- then Ed25519 + SM2 signatures), and then times:

- integration throughput with those checks (leaves/s over the whole build);
- the cost of the checks alone: `tilecheck.verify_edge` + `verify_extension` at size N for a 10,000-leaf batch;
- a full `depository audit` of the N-leaf log (every leaf against its deposit row, every tile full and
  partial rebuilt, every checkpoint, consistency between consecutive checkpoints), with its peak RSS;
- an incremental audit (`--since-checkpoint last`) after a further 1% of deposits.

Prints one JSON object per backend; docs/benchmarks.md records the figures with the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_log import fresh_pg
from depository.audit import audit, finish, last_passing_seq
from depository.config import load_config
from depository.deposits import DepositRequest
from depository.wiring import audit_trust, build_services, init_home
from evidence import merkle, tilecheck, tiles

CHUNK = 10_000


def requests(start: int, n: int) -> list[DepositRequest]:
    out = []
    for i in range(start, start + n):
        doc = b"lease agreement %d" % i
        out.append(DepositRequest.from_json({
            "kind": "other", "sha256": hashlib.sha256(doc).hexdigest(),
            "sm3": hashlib.new("sm3", doc).hexdigest(), "size": len(doc),
            "metadata": {"title": f"Lease {i}"} if i % 3 else {}}))
    return out


def deposit(s: object, tenant: str, start: int, n: int) -> float:
    t = time.perf_counter()
    for i in range(start, start + n, CHUNK):
        s.deposits.create_many(tenant, requests(i, min(CHUNK, start + n - i)))  # type: ignore[attr-defined]
    return time.perf_counter() - t


def integrate(s: object, batch: int) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    while s.log.integrate(batch) is not None:  # type: ignore[attr-defined]
        n += 1
    return time.perf_counter() - t, n


def check_cost(s: object, rounds: int = 5) -> float:
    """Seconds for one 10,000-leaf batch's pre-sign checks and tile update at the current size (median of
    `rounds`): the edge proved against the signed root, the update, the independent root and consistency."""
    log = s.log  # type: ignore[attr-defined]
    size = log.sizes()[0]
    with log.engine.connect() as conn:
        edge = log._load_tiles(conn, [(c.level, c.index) for c in tiles.right_edge_tiles(size)])
    root = log.latest_checkpoint().root_hash
    leaves = [merkle.SHA256.hash_leaf(b"x%d" % i) for i in range(CHUNK)]
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        frontier = tilecheck.verify_edge(merkle.SHA256, size, edge.values(), root)
        upd = tiles.update_tiles(merkle.SHA256, size, edge.values(), leaves)
        merged = dict(edge)
        merged.update({(x.level, x.index): x for x in upd.tiles})
        tilecheck.verify_extension(merkle.SHA256, size, root, frontier, leaves, upd.root, merged)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def run(backend: str, leaves: int, batch: int, tmp: Path) -> dict[str, object]:
    url = f"sqlite:///{tmp / backend / 'audit.db'}" if backend == "sqlite" else fresh_pg("dep_bench_audit")
    config = load_config(env={}, home=tmp / backend, database_url=url)
    init_home(config)
    s = build_services(config, notary=False)
    out: dict[str, object] = {"backend": backend, "leaves": leaves, "batch": batch}
    try:
        tenant = s.tenants.create("Bench Rentals")[0]
        dep_s = int_s = 0.0
        done = 0
        while done < leaves:  # deposit and integrate in step, as a running service does
            step = min(batch * 10, leaves - done)
            dep_s += deposit(s, tenant, done, step)
            dt, _ = integrate(s, batch)
            int_s += dt
            done += step
        out.update(deposit_per_s=leaves / dep_s, integrate_checked_per_s=leaves / int_s)
        out["pre_sign_checks_10k_batch_ms"] = check_cost(s) * 1000
        trust = audit_trust(config, s.keys)
        started = datetime.now(UTC)
        t = time.perf_counter()
        rep = audit(s.engine, trust)
        out["full_audit_s"] = time.perf_counter() - t
        out["full_audit_leaves_per_s"] = leaves / out["full_audit_s"]  # type: ignore[operator]
        out["full_audit_ok"] = rep.ok
        out["full_audit_findings"] = rep.finding_count
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finish(s.engine, rep, started)
        extra = max(1, leaves // 100)
        deposit(s, tenant, leaves, extra)
        integrate(s, batch)
        since = last_passing_seq(s.engine)
        t = time.perf_counter()
        inc = audit(s.engine, trust, since_seq=since)
        out["incremental_audit_s"] = time.perf_counter() - t
        out["incremental_entries"] = inc.entries
        out["incremental_ok"] = inc.ok
    finally:
        s.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        for b in args.backends.split(","):
            res = run(b, args.leaves, args.batch, Path(d))
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}), flush=True)


if __name__ == "__main__":
    main()
