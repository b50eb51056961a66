"""`GET /metrics`: Prometheus text exposition of the log, intake, integration and notary.

Every figure here is read from the database (or Redis), not from counters in this process: behind
gunicorn a scrape reaches one worker of many, and only the shared state gives the same answer whichever
worker answers. The reads are bounded (the last `RECENT_CHECKPOINTS` checkpoints, primary-key lookups),
so a scrape costs the same at 10^3 or 10^9 leaves.

Integration figures come from the recent checkpoints: a checkpoint's *batch* is the leaves it added over
its predecessor; its *latency* is from the sequencing of the batch's first (oldest) entry to the
checkpoint's creation -- the longest any deposit of that batch waited to be in a signed tree.
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import func, select, text

from depository.db import is_postgres
from depository.integrator_lock import ADVISORY_LOCK_KEY
from depository.log import integrator_lock_for
from depository.models import CheckpointRow, LogEntry, TenantRow

bp = Blueprint("metrics", __name__)

RECENT_CHECKPOINTS = 200


def _gauge(lines: list[str], name: str, help_: str, value: float | int, kind: str = "gauge") -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {_num(value)}"]


def _label(value: str, limit: int = 200) -> str:
    """A Prometheus label value: backslash, quote and newline escaped, long reasons shortened."""
    value = value if len(value) <= limit else value[:limit - 1] + "…"
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float | int) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def _recent(lines: list[str], name: str, help_: str, values: list[float]) -> None:
    """Quantiles and the count of a window of recent values, as gauges: the window slides, so these go
    down as well as up (a histogram's `_bucket` counters must never go down, or `rate()` breaks)."""
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
    for q in (0.5, 0.99, 1.0):
        lines.append(f'{name}{{quantile="{q:g}"}} {_num(_quantile(values, q))}')
    lines += [f"# HELP {name}_window Values in that window.", f"# TYPE {name}_window gauge",
              f"{name}_window {len(values)}"]


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def integration_figures(engine: Any) -> dict[str, Any]:
    """Batch sizes and latencies of the recent checkpoints, the oldest pending entry's age, counts."""
    with engine.connect() as conn:
        rows = conn.execute(select(CheckpointRow.size, CheckpointRow.created_at)
                            .order_by(CheckpointRow.size.desc()).limit(RECENT_CHECKPOINTS + 1)).all()
        rows = list(reversed(rows))
        starts = [r.size for r in rows[:-1]]  # the first entry of each following checkpoint's batch
        sequenced: dict[int, float] = {}
        if starts:
            sequenced = dict(conn.execute(select(LogEntry.idx, LogEntry.sequenced_at)
                                          .where(LogEntry.idx.in_(starts))).all())
        checkpoints = conn.execute(select(func.count()).select_from(CheckpointRow)).scalar_one()
        tenants = conn.execute(select(func.count()).select_from(TenantRow)).scalar_one()
    batches: list[float] = []
    latencies: list[float] = []
    for prev, cur in pairwise(rows):
        batches.append(float(cur.size - prev.size))
        at = sequenced.get(prev.size)
        if at is not None:
            latencies.append(max(0.0, _aware(cur.created_at).timestamp() - at))
    latest_at = _aware(rows[-1].created_at).timestamp() if rows else None
    return {"batches": batches, "latencies": latencies, "checkpoints": int(checkpoints),
            "tenants": int(tenants), "latest_checkpoint_at": latest_at}


def _oldest_pending_age(engine: Any, size: int, nxt: int) -> float:
    if nxt <= size:
        return 0.0
    with engine.connect() as conn:
        at = conn.execute(select(LogEntry.sequenced_at).where(LogEntry.idx == size)).scalar()
    return max(0.0, time.time() - at) if at is not None else 0.0


def integrator_lock_held_anywhere(engine: Any, home: Path) -> bool:
    """Whether any process holds the integrator lock (it runs in background processes, not here).

    PostgreSQL: a granted advisory lock with our key in this database, from `pg_locks` (readable by any
    role). SQLite: try the flock ourselves without blocking -- refused means someone holds it; granted
    means no one did, and it is released at once (a waiting integrator retries within a second).
    """
    if is_postgres(engine):
        with engine.connect() as conn:
            # A bigint key shows as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
            n = conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :hi "
                "AND objid = :lo AND objsubid = 1 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"hi": ADVISORY_LOCK_KEY >> 32, "lo": ADVISORY_LOCK_KEY & 0xFFFFFFFF}).scalar_one()
        return bool(n)
    lock_file = integrator_lock_for(engine, home)._lock_file
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False  # no integrator ever ran in this home
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock, if we got it
    return False


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@bp.get("/metrics")
def metrics() -> Response:
    s = current_app.extensions["depository"]
    size, nxt = s.log.sizes()
    lines: list[str] = []
    _gauge(lines, "depository_tree_size", "Leaves integrated into the Merkle tree.", size)
    _gauge(lines, "depository_sequenced_total", "Entries sequenced (durably indexed).", nxt, "counter")
    _gauge(lines, "depository_deposits_total",
           "Deposits acknowledged (each has a durable log index; one log entry per deposit).", nxt, "counter")
    _gauge(lines, "depository_pending_entries", "Entries sequenced but not yet integrated.", nxt - size)
    _gauge(lines, "depository_oldest_pending_seconds",
           "Age of the oldest entry waiting for integration (0 when none waits); a stalled integrator grows it.",
           _oldest_pending_age(s.engine, size, nxt))
    halt = s.log.halts.current()
    _gauge(lines, "depository_log_integration_halted",
           "1 while integration is halted because the stored tree failed its check before signing "
           "(nothing is signed; deposits wait); /healthz and `depository status` give the reason.",
           0 if halt is None else 1)
    if halt is not None:
        lines += ["# HELP depository_log_integration_halted_info The open halt (value 1), with its reason.",
                  "# TYPE depository_log_integration_halted_info gauge",
                  f'depository_log_integration_halted_info{{tree_size="{halt.tree_size}",'
                  f'reason="{_label(halt.reason)}"}} 1',
                  "# HELP depository_log_integration_halted_since_seconds Unix time the halt was raised.",
                  "# TYPE depository_log_integration_halted_since_seconds gauge",
                  f"depository_log_integration_halted_since_seconds {int(halt.raised_at.timestamp())}"]
    fig = integration_figures(s.engine)
    _gauge(lines, "depository_checkpoints_total", "Checkpoints published.", fig["checkpoints"], "counter")
    _gauge(lines, "depository_tenants", "Tenants.", fig["tenants"])
    if fig["latest_checkpoint_at"] is not None:
        _gauge(lines, "depository_latest_checkpoint_age_seconds", "Seconds since the latest checkpoint.",
               max(0.0, time.time() - fig["latest_checkpoint_at"]))
    _recent(lines, "depository_integration_batch_entries",
            f"Leaves added per checkpoint over the last {RECENT_CHECKPOINTS} checkpoints (quantile 1 = max).",
            fig["batches"])
    _recent(lines, "depository_integration_latency_seconds",
            f"Sequencing of a batch's oldest entry to its checkpoint, last {RECENT_CHECKPOINTS} (quantile 1 = max).",
            fig["latencies"])
    if s.redis is not None:
        try:
            s.redis.ping()
            up = 1
        except Exception:
            up = 0
        _gauge(lines, "depository_redis_up", "1 when Redis answers a PING.", up)
    _gauge(lines, "depository_integrator_lock_held",
           "1 when some process (any server's background process) holds the integrator lock; the same "
           "answer from every API process. 0 for long: nothing integrates.",
           1 if integrator_lock_held_anywhere(s.engine, s.config.home) else 0)
    if s.notary is not None:
        try:
            lines.extend(s.notary.metrics_lines())
        except Exception:
            _gauge(lines, "depository_notary_metrics_error", "1 when the notary's figures could not be read.", 1)
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
