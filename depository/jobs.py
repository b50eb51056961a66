"""rq jobs of the notary (when `DEPOSITORY_REDIS_URL` is set) and the worker that runs them.

rq habits: jobs are module-level functions that take ids (the home that names the deployment and a
checkpoint id), never objects; they are idempotent (a checkpoint already stamped or cosigned is skipped,
so a job run twice or a sweep racing a job does no harm); the Redis connection is passed in explicitly.

A worker process keeps one `Notary` per home (`register`, or built on first use from that home's
config), so witness connections, backoff state and the database pool live across jobs. `depository
worker` runs rq's `SimpleWorker` (no fork per job): the jobs are short network calls, and a forking
worker managed ~65 jobs/s on the issue's machine, more than one job per checkpoint needs but with no
headroom to spare.

Job ids are `notary-<home tag>-<checkpoint id>` and `notary-<home tag>-sweep`, enqueued with
`unique=True` so a checkpoint or a sweep is never queued twice; finished jobs are deleted at once
(`result_ttl=0`) so the id can be used again by the next sweep.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import DuplicateJobError

from depository.config import Config

if TYPE_CHECKING:
    from depository.notary import Notary

__all__ = ["Dispatcher", "notarize_checkpoint", "register", "run_worker", "sweep", "unregister"]

log = logging.getLogger(__name__)

NOTARY_QUEUE = "notary"
JOB_TIMEOUT_S = 120
FAILURE_TTL_S = 60

_notaries: dict[str, Notary] = {}
_lock = threading.Lock()


def home_key(home: Path | str) -> str:
    """The string that names a deployment in job arguments: its resolved home path."""
    return str(Path(home).resolve())


def register(home: Path | str, notary: Notary) -> None:
    """Let jobs for `home` in this process use `notary` (the worker's, or a test's)."""
    with _lock:
        _notaries[home_key(home)] = notary


def unregister(home: Path | str) -> None:
    with _lock:
        _notaries.pop(home_key(home), None)


def _notary(home: str) -> Notary:
    with _lock:
        notary = _notaries.get(home)
    if notary is not None:
        return notary
    from depository.config import load_config
    from depository.wiring import build_services

    services = build_services(load_config(home=Path(home)))
    if services.notary is None:
        raise RuntimeError(f"home {home} configures no witnesses and no TSA")
    with _lock:
        return _notaries.setdefault(home, services.notary)


def notarize_checkpoint(home: str, checkpoint_id: int) -> dict[str, Any]:
    """rq job: timestamp checkpoint `checkpoint_id` and bring the witnesses up to the latest checkpoint."""
    return _notary(home).notarize(checkpoint_id)


def sweep(home: str) -> dict[str, Any]:
    """rq job: redo what is missing (tokens for untimestamped checkpoints, cosignatures on the latest)."""
    return _notary(home).sweep()


class Dispatcher:
    """The service side: enqueues jobs for one deployment on the `notary` queue of config.redis_url."""

    def __init__(self, config: Config, connection: Redis | None = None) -> None:
        if connection is None and not config.redis_url:
            raise ValueError("Dispatcher needs config.redis_url or a connection")
        self.connection = connection or Redis.from_url(config.redis_url or "")
        self.home = home_key(config.home)
        self.tag = hashlib.sha256(self.home.encode()).hexdigest()[:12]
        self.queue = Queue(NOTARY_QUEUE, connection=self.connection)

    def _enqueue(self, func: Any, args: tuple[Any, ...], job_id: str) -> None:
        try:
            self.queue.enqueue_call(func, args=args, job_id=job_id, unique=True, result_ttl=0,
                                    failure_ttl=FAILURE_TTL_S, timeout=JOB_TIMEOUT_S)
        except DuplicateJobError:
            pass  # already queued or running: that job will see this checkpoint too

    def submit(self, checkpoint_id: int) -> None:
        self._enqueue(notarize_checkpoint, (self.home, checkpoint_id), f"notary-{self.tag}-{checkpoint_id}")

    def request_sweep(self) -> None:
        self._enqueue(sweep, (self.home,), f"notary-{self.tag}-sweep")

    def close(self) -> None:
        """Release the Redis connection pool (the notary calls this when it stops)."""
        self.connection.close()

    def depth(self) -> int:
        try:
            return int(self.queue.count)
        except Exception:
            return -1


def run_worker(config: Config, *, burst: bool = False, queues: tuple[str, ...] = ("notary", "monitoring")) -> None:
    """`depository worker`: one rq SimpleWorker (no fork per job) on the notary and monitoring queues.

    The services are built once; each queue's jobs find their service through the per-home registry.
    """
    from depository.monitoring import jobs as monitoring_jobs
    from depository.wiring import build_services

    if not config.redis_url:
        raise ValueError("run_worker needs config.redis_url")
    services = build_services(config, notary="notary" in queues)
    try:
        if "notary" in queues:
            if services.notary is None:
                log.warning("no witnesses or TSA configured; notary jobs will have nothing to do")
            else:
                register(config.home, services.notary)
        if "monitoring" in queues and services.monitoring is not None:
            monitoring_jobs.register(config.home, services.monitoring)
        connection = Redis.from_url(config.redis_url)
        try:
            worker = SimpleWorker([Queue(q, connection=connection) for q in queues], connection=connection)
            worker.work(burst=burst)
        finally:
            connection.close()
    finally:
        unregister(config.home)
        monitoring_jobs.unregister(config.home)
        services.close()
