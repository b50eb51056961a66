"""Scale benchmark (issue 8): how integration and proofs cost as the log grows, 10^3 .. 10^7 leaves.

    python bench/bench_scale.py [--max-exp 7] [--backends sqlite,postgresql] [--pg-max-exp 6]

One tree per backend grows decade by decade (sequencing and integration reuse bench/bench_log.py). At each
size N = 10^k it measures, on that tree:

- integration of one further batch of 10,000 entries (read, hash, extend the right-edge tiles, sign a
  checkpoint with Ed25519 + SM2, commit): the marginal cost of integration at size N;
- 300 random inclusion and 300 consistency proofs served from storage (median and p99);
- storage per leaf: tiles (served hashes + inner nodes) and log entries (leaf data + identity), from the
  database's own size accounting.

Integration is O(batch + log N) and a proof reads O(log N / 8) tiles, so both should stay nearly flat; the
figures show whether they do on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_log import fresh_pg, integrate, sequence
from bench.bench_log import proofs as log_proofs
from depository.config import load_config
from depository.log import Log
from depository.models import LogEntry, TileRow
from depository.wiring import build_services, init_home

BATCH = 10_000


def proofs(log: Log, size: int, rounds: int = 300) -> dict[str, float]:
    """bench_log's proof timing, with this report's key names (p50 for median)."""
    return {k.replace("median", "p50"): v for k, v in log_proofs(log, size, rounds, seed=size).items()}


def storage(log: Log, size: int) -> dict[str, float]:
    with log.engine.connect() as conn:
        tiles_b = conn.execute(select(func.sum(func.length(TileRow.hashes) + func.length(TileRow.inner)))).scalar() or 0
        entries_b = conn.execute(select(func.sum(func.length(LogEntry.data) + func.length(LogEntry.identity))
                                        )).scalar() or 0
        on_disk = None
        if log.engine.dialect.name == "postgresql":
            on_disk = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    out = {"tile_bytes_per_leaf": tiles_b / size, "entry_bytes_per_leaf": entries_b / size}
    if on_disk is not None:
        out["db_bytes_per_leaf"] = on_disk / size
    return out


def run(backend: str, max_exp: int, tmp: Path) -> list[dict[str, object]]:
    url = f"sqlite:///{tmp / backend / 'scale.db'}" if backend == "sqlite" else fresh_pg("dep_bench_scale")
    config = load_config(env={}, home=tmp / backend, database_url=url, max_pending_entries=20_000_000)
    init_home(config)
    s = build_services(config, notary=False)
    rows: list[dict[str, object]] = []
    try:
        size = 0
        for exp in range(3, max_exp + 1):
            target = 10 ** exp
            while size < target:  # grow in steps, integrating as we go (as the service would)
                step = min(1_000_000, target - size)
                sequence(s.log, size, step, chunk=50_000)
                integrate(s.log, 200_000)
                size += step
            row: dict[str, object] = {"backend": backend, "leaves": size}
            row.update(proofs(s.log, size))
            row.update(storage(s.log, size))
            # The marginal integration cost at this size: one more batch of BATCH entries.
            sequence(s.log, size, BATCH, chunk=BATCH)
            t = time.perf_counter()
            integrate(s.log, BATCH)
            row["integrate_batch_s"] = time.perf_counter() - t
            row["integrate_per_s"] = BATCH / row["integrate_batch_s"]  # type: ignore[operator]
            size += BATCH
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    finally:
        s.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-exp", type=int, default=7)
    ap.add_argument("--pg-max-exp", type=int, default=6)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        for b in args.backends.split(","):
            run(b, args.max_exp if b == "sqlite" else args.pg_max_exp, Path(d))


if __name__ == "__main__":
    main()
