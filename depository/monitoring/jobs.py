"""rq jobs of monitoring (when `DEPOSITORY_REDIS_URL` is set), and a worker for their queue.

rq habits, as in `depository.jobs`: module-level functions that take ids (the home that names the
deployment, a watch or delivery id), idempotent (a watch run records fetches and deduplicated alerts; a
delivery attempt runs only while the delivery is pending), the Redis connection passed in explicitly.
Job ids are `monitor-<home tag>-watch-<id>` / `-delivery-<id>`, enqueued with `unique=True` so one is
never queued twice, and deleted when done (`result_ttl=0`) so the next period can reuse the id.

A worker process keeps one `Monitoring` per home (`register`, or built from that home's config on
first use), so the fetcher's robots.txt cache and the similarity indexes live across jobs.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from depository.config import Config

if TYPE_CHECKING:
    from depository.monitoring.service import Monitoring

__all__ = ["MONITORING_QUEUE", "RqDispatcher", "deliver", "register", "run_watch", "run_worker", "unregister"]

MONITORING_QUEUE = "monitoring"
JOB_TIMEOUT_S = 300
FAILURE_TTL_S = 3600

_monitors: dict[str, Monitoring] = {}
_lock = threading.Lock()


def home_key(home: Path | str) -> str:
    return str(Path(home).resolve())


def register(home: Path | str, monitoring: Monitoring) -> None:
    """Let jobs for `home` in this process use `monitoring` (the worker's, or a test's)."""
    with _lock:
        _monitors[home_key(home)] = monitoring


def unregister(home: Path | str) -> None:
    with _lock:
        _monitors.pop(home_key(home), None)


def _monitoring(home: str) -> Monitoring:
    with _lock:
        m = _monitors.get(home)
    if m is not None:
        return m
    from depository.config import load_config
    from depository.wiring import build_services

    services = build_services(load_config(home=Path(home)), notary=False)
    with _lock:
        return _monitors.setdefault(home, services.monitoring)


def run_watch(home: str, watch_id: str) -> dict[str, Any]:
    """rq job: fetch and match one watch now."""
    report = _monitoring(home).watches.run(watch_id)
    return {"watch_id": watch_id, "ok": bool(report and report.ok), "alerts": report.alerts if report else []}


def deliver(home: str, delivery_id: str) -> str:
    """rq job: one attempt of one notification delivery."""
    return _monitoring(home).notifier.deliver(delivery_id)


class RqDispatcher:
    """Enqueues monitoring jobs of one deployment on the `monitoring` queue."""

    def __init__(self, config: Config, connection: Redis) -> None:
        self.home = home_key(config.home)
        self.tag = hashlib.sha256(self.home.encode()).hexdigest()[:12]
        self.queue = Queue(MONITORING_QUEUE, connection=connection)

    def _enqueue(self, func: Any, arg: str, job_id: str) -> None:
        try:
            self.queue.enqueue_call(func, args=(self.home, arg), job_id=job_id, unique=True, result_ttl=0,
                                    failure_ttl=FAILURE_TTL_S, timeout=JOB_TIMEOUT_S)
        except DuplicateJobError:
            pass  # already queued or running

    def submit_watch(self, watch_id: str) -> None:
        self._enqueue(run_watch, watch_id, f"monitor-{self.tag}-watch-{watch_id}")

    def submit_delivery(self, delivery_id: str) -> None:
        self._enqueue(deliver, delivery_id, f"monitor-{self.tag}-delivery-{delivery_id}")

    def close(self) -> None:
        """Nothing to release: the connection belongs to Services."""


def run_worker(config: Config, *, burst: bool = False) -> None:
    """An rq worker on the monitoring queue only (`depository worker --queue monitoring`)."""
    from depository.jobs import run_worker as run

    run(config, burst=burst, queues=(MONITORING_QUEUE,))
