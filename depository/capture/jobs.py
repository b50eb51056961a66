"""The rq job of a capture (when `DEPOSITORY_REDIS_URL` is set): run on the `monitoring` queue, so the
existing `depository worker` runs captures and an API process never starts a browser.

rq habits as in `depository.jobs`: a module-level function taking ids, idempotent (`Captures.run`
leaves a finished capture alone), the Redis connection passed in. A worker keeps one `Services` per
home (built on first use).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue

from depository.monitoring.jobs import FAILURE_TTL_S, MONITORING_QUEUE, home_key

__all__ = ["RqCaptureRunner", "run_capture"]

JOB_TIMEOUT_S = 600
_services: dict[str, Any] = {}
_lock = threading.Lock()


def register(home: Path | str, services: Any) -> None:
    """Let capture jobs for `home` in this process use `services` (a test's, or the worker's)."""
    with _lock:
        _services[home_key(home)] = services


def _captures(home: str) -> Any:
    with _lock:
        s = _services.get(home)
    if s is None:
        from depository.config import load_config
        from depository.wiring import build_services

        s = build_services(load_config(home=Path(home)), notary=False)
        with _lock:
            s = _services.setdefault(home, s)
    return s.captures


def run_capture(home: str, tenant_id: str, capture_id: str) -> dict[str, Any]:
    """rq job: render, record and deposit one capture."""
    rec: dict[str, Any] = _captures(home).run(tenant_id, capture_id)
    return {"capture_id": capture_id, "status": rec["status"]}


class RqCaptureRunner:
    """Enqueues capture jobs of one deployment; job id `capture-<capture id>` (never queued twice)."""

    def __init__(self, home: Path, connection: Redis) -> None:
        self.home = home_key(home)
        self.queue = Queue(MONITORING_QUEUE, connection=connection)

    def __call__(self, tenant_id: str, capture_id: str) -> None:
        self.queue.enqueue_call(run_capture, args=(self.home, tenant_id, capture_id), job_id=f"capture-{capture_id}",
                                result_ttl=0, failure_ttl=FAILURE_TTL_S, timeout=JOB_TIMEOUT_S)
