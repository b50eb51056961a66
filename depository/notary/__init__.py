"""The log's notary: every published checkpoint is cosigned by the policy's witnesses and timestamped.

Flow (one unit of work per checkpoint, never per deposit):

    Log._publish -> listener -> submit(checkpoint id)
        in-process (no Redis): a queue.Queue drained by one worker thread
        Redis configured:      an rq job `depository.jobs.notarize_checkpoint(home, id)` on `notary`
    notarize(id): timestamp that checkpoint, then bring every witness up to the *latest* checkpoint

Choices, and why:

* Every checkpoint is timestamped (issue 4: "Every checkpoint is timestamped"): a TSA request is cheap,
  and each checkpoint's token is what bounds the time of the deposits it first contains.
* Witnesses are asked for the latest checkpoint, not for each queued one (see witnessing.py). The older
  checkpoints stay `witnessed = False`; the proof bundle then uses the earliest checkpoint that has both
  the quorum and a token, which is the newest one here -- still a tight bound, because it was published
  moments after them. When the queue is not backed up, "latest" is the checkpoint the job is for.
* Outages: a party that fails gets exponential backoff (0.5 s doubling, capped at
  `notary_retry_max_s`); nothing here runs on the deposit path, so deposits never wait. A periodic sweep
  (every 0.5 s in-process; an rq `sweep` job when Redis is configured) retries what is missing: tokens
  for every untimestamped checkpoint, cosignatures on the latest checkpoint. So the notary catches up
  by itself when a witness or the TSA returns.

Modules: `store` (every query), `stamping` (tokens), `witnessing` (cosignatures), `backoff`, `observe`
(/healthz and /metrics); this one runs them: the queue, the worker and sweep threads, `notarize`.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from depository.config import Config
from depository.errors import ConfigError
from depository.log import Log, PublishedCheckpoint
from depository.notary import observe
from depository.notary.backoff import Backoff
from depository.notary.stamping import Stamping, build_stamper, tsa_ca_path
from depository.notary.store import NotaryStore
from depository.notary.witnessing import Endpoint, Witnessing, endpoints_for
from evidence.checkpoint import append_signature_lines
from evidence.errors import EvidenceError
from evidence.policy import Policy
from notary_bridge.tsa import TimeStamper

__all__ = ["Backoff", "Endpoint", "Notary", "build_notary", "build_stamper", "load_policy", "tsa_ca_path"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.5
#: How many untimestamped checkpoints one sweep stamps (oldest first); the next sweep does the rest.
SWEEP_BATCH = 200
#: Older queued checkpoints are stamped this many at a time (TSA round trips overlap).
STAMP_PARALLEL = 4


class Notary:
    """Witnessing and timestamping of the log's checkpoints (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        the_log: Log,
        *,
        policy: Policy | None,
        policy_text: str | None,
        stamper: TimeStamper | None,
        tsa_ca_pem: bytes | None,
        retry_max_s: float,
        submit: Callable[[int], None] | None = None,
        request_sweep: Callable[[], None] | None = None,
        queue_depth: Callable[[], int] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.log = the_log
        self.policy = policy
        self.policy_text = policy_text or ""
        self.stamper = stamper
        self.tsa_ca_pem = tsa_ca_pem
        self.retry_max_s = retry_max_s
        self.tsa_backoff = Backoff(retry_max_s)
        self.endpoints = endpoints_for(policy, retry_max_s)
        self.store = NotaryStore(engine)
        self.stamping = Stamping(self.store, stamper, tsa_ca_pem, self.tsa_backoff)
        self.witnessing = Witnessing(self.store, the_log, policy, self.endpoints, self._pool)
        self._submit_remote = submit
        self._request_sweep = request_sweep
        self._remote_depth = queue_depth
        self._on_stop = on_stop
        self._queue: queue.Queue[int] = queue.Queue()
        self._stop = threading.Event()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self._sweep_wait = SWEEP_INTERVAL_S

    @property
    def last_witness_latency_s(self) -> float | None:
        return self.witnessing.last_latency_s

    # ---- lifecycle and dispatch --------------------------------------------------------------------

    def on_checkpoint(self, cp: PublishedCheckpoint) -> None:
        """Log listener: hand the checkpoint to the worker; cheap, never blocks publishing for long."""
        if self._submit_remote is not None:
            self._submit_remote(cp.id)
        else:
            self._queue.put(cp.id)

    def start(self) -> None:
        """Start the worker thread (in-process) or the sweep thread that enqueues rq sweeps (Redis)."""
        if self._thread is not None:
            return
        self._stop.clear()
        target = self._run_local if self._submit_remote is None else self._run_sweeper
        self._thread = threading.Thread(target=target, name="notary", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)
        self.witnessing.close()
        if self._on_stop is not None:
            self._on_stop()

    def _run_local(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=SWEEP_INTERVAL_S)
            except queue.Empty:
                self._guarded(self.sweep)
                continue
            ids = {first}
            while True:
                try:
                    ids.add(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._guarded(functools.partial(self.notarize_many, sorted(ids)))
            if time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
                self._guarded(self.sweep)

    def _run_sweeper(self) -> None:
        """Redis mode: ask the rq workers for a sweep while work is missing, backing off while it stays so."""
        while not self._stop.wait(self._sweep_wait):
            try:
                if self.lagging() and self._request_sweep is not None:
                    self._request_sweep()
                    self._sweep_wait = min(self._sweep_wait * 2, max(self.retry_max_s, SWEEP_INTERVAL_S))
                else:
                    self._sweep_wait = SWEEP_INTERVAL_S
            except Exception:
                log.exception("notary sweep request failed")

    @staticmethod
    def _guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            # A database hiccup must not kill the worker; the next sweep redoes what is missing.
            log.exception("notary work failed; the sweep will retry")

    # ---- the work (also what the rq jobs call) ---------------------------------------------------------

    def notarize(self, checkpoint_id: int) -> dict[str, Any]:
        """Timestamp checkpoint `checkpoint_id` and bring the witnesses up to the latest checkpoint."""
        return self.notarize_many([checkpoint_id])

    def notarize_many(self, checkpoint_ids: Sequence[int]) -> dict[str, Any]:
        """Stamp each checkpoint while, at the same time, the witnesses are asked about the latest one.

        The TSA and the witnesses are independent parties, so their round trips overlap: the
        checkpoint-to-done latency is the slower of the two, not their sum. The newest checkpoint is
        stamped first: it is the one the witnesses cosign, so it is the one that makes its deposits
        `witnessed`; when checkpoints queue up (several a second under load), stamping oldest first left
        the witnessed checkpoint without a token until the whole backlog was done. The older ones follow,
        a few at a time (the TSA round trips overlap).
        """
        ids = sorted(set(checkpoint_ids), reverse=True)
        if not ids:
            return {"timestamped": 0, "witnessed": self.witnessing.witness_latest()}
        witnessing = self._pool("witnessing", 1).submit(self.witnessing.witness_latest)
        stamped = int(self.stamping.timestamp(self.log.checkpoint(ids[0])))
        witnessed = witnessing.result()
        if len(ids) > 1:
            stamped += sum(self._pool("stamping", STAMP_PARALLEL).map(
                lambda cid: self.stamping.timestamp(self.log.checkpoint(cid)), ids[1:]))
        return {"timestamped": stamped, "witnessed": witnessed}

    def _pool(self, name: str, workers: int) -> ThreadPoolExecutor:
        """A long-lived pool per kind of work: threads (and their database connections) are reused, not
        made afresh for every checkpoint. Pools are never nested in one another (no deadlock)."""
        with self._pools_lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = ThreadPoolExecutor(max_workers=max(1, workers),
                                                              thread_name_prefix=f"notary-{name}")
            return pool

    def sweep(self) -> dict[str, Any]:
        """Redo whatever is missing: tokens (oldest first) and cosignatures on the latest checkpoint."""
        self._last_sweep = time.monotonic()
        stamped = 0
        if self.stamper is not None and self.tsa_backoff.ready():
            for cp in self.store.untimestamped(SWEEP_BATCH):
                if not self.stamping.timestamp(cp):
                    break  # the TSA is failing: leave the rest to the sweep after the backoff
                stamped += 1
        witnessed = self.witnessing.witness_latest()
        return {"timestamped": stamped, "witnessed": witnessed}

    def lagging(self) -> bool:
        """True if some checkpoint lacks a token or the latest lacks a configured witness's cosignature."""
        if self.stamper is not None and self.store.any_untimestamped():
            return True
        return self.witnessing.missing_on_latest()

    # ---- what the rest of the service reads ------------------------------------------------------------

    def timestamp_for(self, cp: PublishedCheckpoint) -> tuple[bytes | None, str | None]:
        """(DER token, PEM chain: the TSA's certificate first, its root last) or (None, None)."""
        return self.stamping.token_for(cp)

    def checkpoint_text(self, cp: PublishedCheckpoint) -> str:
        """The log's note with the stored cosignature lines appended, in policy order."""
        rows = self.store.cosignature_lines(cp.id)
        if not rows:
            return cp.note
        order = {w.name: i for i, w in enumerate(self.policy.witnesses)} if self.policy else {}
        lines = [line for _, line in sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[0]))]
        return append_signature_lines(cp.note, lines)

    def public_material(self) -> dict[str, Any]:
        """For GET /v1/log/keys: the policy text, each witness's vkey and URL, the TSA root(s)."""
        return {
            "witness_policy": self.policy_text or None,
            "witnesses": [{"name": w.name, "vkey": w.verifier.to_vkey(), "url": w.url}
                          for w in (self.policy.witnesses if self.policy else ())],
            "tsa_ca_pem": self.tsa_ca_pem.decode() if self.tsa_ca_pem else None,
        }

    def health(self) -> dict[str, Any]:
        """`witnesses` and `tsa` checks for /healthz: degraded while a party fails (deposits go on)."""
        return observe.health(self.log, self.store, self.witnessing, self.stamper is not None, self.tsa_backoff)

    def queue_depth(self) -> int:
        return self._remote_depth() if self._remote_depth is not None else self._queue.qsize()

    def metrics_lines(self) -> list[str]:
        """Prometheus lines: witness lag and errors, TSA errors, queue depth, untimestamped checkpoints."""
        return observe.metrics_lines(self.log, self.store, self.witnessing, self.stamper is not None,
                                     self.tsa_backoff, self.queue_depth())


def load_policy(path: Path, origin: str) -> tuple[Policy, str]:
    """Read and check the tlog-policy file; a policy naming logs must name ours."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        policy = Policy.from_text(text)
    except OSError as e:
        raise ConfigError(f"witness policy {path}: {e.strerror or e}") from e
    except EvidenceError as e:
        raise ConfigError(f"witness policy {path}: {e.diagnostics()}") from e
    if policy.logs and origin not in {lg.verifier.name for lg in policy.logs}:
        raise ConfigError(f"witness policy {path} lists logs, but not this log ({origin})")
    return policy, text


def build_notary(config: Config, engine: Engine, the_log: Log) -> Notary:
    """The notary for a configuration, registered as a listener of `the_log` (called by the wiring).

    With `config.redis_url`, checkpoints become rq jobs on the `notary` queue (run by
    `depository worker`); otherwise an in-process thread does the work once `start()` is called.
    """
    policy, text = (load_policy(config.witness_policy_file, the_log.origin)
                    if config.witness_policy_file else (None, None))
    stamper, ca_pem = build_stamper(config)
    submit = request_sweep = depth = on_stop = None
    if config.redis_url:
        from depository import jobs

        dispatcher = jobs.Dispatcher(config)
        submit, request_sweep, depth = dispatcher.submit, dispatcher.request_sweep, dispatcher.depth
        on_stop = dispatcher.close
    notary = Notary(engine, the_log, policy=policy, policy_text=text, stamper=stamper, tsa_ca_pem=ca_pem,
                    retry_max_s=config.notary_retry_max_s, submit=submit, request_sweep=request_sweep,
                    queue_depth=depth, on_stop=on_stop)
    the_log.add_listener(notary.on_checkpoint)
    return notary
