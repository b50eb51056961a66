"""Watched sources and the scheduler that runs them (and retries notifications).

A watch is a URL (a page, an image, or an RSS/Atom feed) fetched every `interval_s` seconds. One
scheduler thread per API process (started by `Services.start_background`) ticks every `monitor_tick_ms`:

    claim due watches      UPDATE ... SET next_run_at = now + interval WHERE id IN (due) AND next_run_at
                           <= now RETURNING id -- a compare-and-set, so two schedulers (two API processes)
                           never run one watch twice for the same period
    claim due deliveries   the same with a lease (`DELIVERY_LEASE_S`) on next_attempt_at
    dispatch               Redis configured: rq jobs `depository.monitoring.jobs.run_watch(home, id)` and
                           `deliver(home, id)` on the `monitoring` queue (rq workers run them);
                           otherwise a pool of `monitor_workers` threads in this process

Job bodies (`run`, `Notifier.deliver`) take ids and are idempotent enough to run twice: a watch run only
records fetches and deduplicated alerts; a delivery attempt only runs while the delivery is pending.
"""

from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import insert, select, update

from depository.deposits import rfc3339_ms
from depository.errors import NotFound, ValidationFailed
from depository.inputs import storable_text
from depository.monitoring.fetcher import FetchError
from depository.monitoring.models import DeliveryRow, WatchRow

if TYPE_CHECKING:
    from depository.monitoring.service import Monitoring, ScanReport

__all__ = ["Watches", "watch_json"]

log = logging.getLogger(__name__)

DELIVERY_LEASE_S = 300
CLAIM_BATCH = 1000
WATCH_KINDS = ("auto", "page", "feed")
MAX_INTERVAL_S = 366 * 24 * 3600


class Dispatcher(Protocol):
    def submit_watch(self, watch_id: str) -> None: ...
    def submit_delivery(self, delivery_id: str) -> None: ...
    def close(self) -> None: ...


class LocalDispatcher:
    """In-process: a small thread pool (no Redis)."""

    def __init__(self, watches: Watches, workers: int) -> None:
        self._w = watches
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="monitor")

    def submit_watch(self, watch_id: str) -> None:
        self._submit(self._w.run_safely, watch_id)

    def submit_delivery(self, delivery_id: str) -> None:
        self._submit(self._w.deliver_safely, delivery_id)

    def _submit(self, fn: Any, arg: str) -> None:
        try:
            self._pool.submit(fn, arg)
        except RuntimeError:  # shutting down: the claim's lease expires and the next scheduler takes it
            log.info("monitoring pool is shutting down; %s left for the next run", arg)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))


def watch_json(row: Any) -> dict[str, Any]:
    def ts(t: datetime | None) -> str | None:
        u = _utc(t)
        return rfc3339_ms(u) if u is not None else None

    return {"id": row.id, "url": row.url, "kind": row.kind, "interval_s": row.interval_s,
            "created_at": ts(row.created_at), "next_run_at": ts(row.next_run_at), "last_run_at": ts(row.last_run_at),
            "last_status": row.last_status, "last_reason": row.last_reason, "runs": row.runs}


class Watches:
    def __init__(self, monitoring: Monitoring) -> None:
        self.m = monitoring
        self.engine = monitoring.engine
        self.config = monitoring.s.config
        self._dispatcher: Dispatcher | None = None
        self._dispatcher_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- CRUD --------------------------------------------------------------------------------------

    def create(self, tenant_id: str, url: Any, interval_s: Any, kind: Any = "auto") -> Any:
        if not isinstance(url, str) or not 0 < len(url) <= 4096 or not storable_text(url):
            raise ValidationFailed("url must be a string of 1 to 4096 printable characters")
        try:
            self.m.fetcher._check_url(url)
        except FetchError as e:
            raise ValidationFailed(e.detail) from e
        lo = self.config.watch_min_interval_s
        if not isinstance(interval_s, int) or isinstance(interval_s, bool) or not lo <= interval_s <= MAX_INTERVAL_S:
            raise ValidationFailed(f"interval_s must be an integer from {lo} to {MAX_INTERVAL_S}")
        if kind not in WATCH_KINDS:
            raise ValidationFailed(f"kind must be one of {', '.join(WATCH_KINDS)}")
        now = datetime.now(UTC)
        wid = "wat_" + secrets.token_hex(10)
        with self.engine.begin() as conn:
            conn.execute(insert(WatchRow).values(id=wid, tenant_id=tenant_id, url=url, kind=kind,
                                                 interval_s=interval_s, created_at=now, next_run_at=now,
                                                 runs=0, active=True))
        return self.get(tenant_id, wid)

    def get(self, tenant_id: str, watch_id: str) -> Any:  # a Row of monitoring_watches
        with self.engine.connect() as conn:
            row = conn.execute(select(WatchRow).where(WatchRow.id == watch_id, WatchRow.tenant_id == tenant_id,
                                                      WatchRow.active.is_(True))).first()
        if row is None:
            raise NotFound(f"no watch {watch_id[:64]}")
        return row

    def list_for(self, tenant_id: str, limit: int = 100, offset: int = 0) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(WatchRow).where(WatchRow.tenant_id == tenant_id, WatchRow.active.is_(True))
                                     .order_by(WatchRow.created_at, WatchRow.id)
                                     .limit(max(1, min(limit, 1000))).offset(max(0, offset))))

    def delete(self, tenant_id: str, watch_id: str) -> None:
        self.get(tenant_id, watch_id)
        with self.engine.begin() as conn:
            conn.execute(update(WatchRow).where(WatchRow.id == watch_id).values(active=False))

    # ---- job bodies --------------------------------------------------------------------------------

    def run(self, watch_id: str) -> ScanReport | None:
        """Fetch and match one watch now (the job body); records the outcome on the watch."""
        with self.engine.connect() as conn:
            row = conn.execute(select(WatchRow).where(WatchRow.id == watch_id)).first()
        if row is None or not row.active:
            return None
        report = self.m.scan_url(row.tenant_id, row.url, watch_id=row.id, kind=row.kind)
        with self.engine.begin() as conn:
            conn.execute(update(WatchRow).where(WatchRow.id == watch_id).values(
                last_run_at=datetime.now(UTC), last_status="ok" if report.ok else "failed",
                last_reason=report.reason, runs=WatchRow.runs + 1))
        return report

    def run_safely(self, watch_id: str) -> None:
        """Thread-pool wrapper: a bug must not kill the pool thread silently; it is logged and the watch
        marked failed (remote failures never get here -- scan_url records them)."""
        try:
            self.run(watch_id)
        except Exception as e:
            log.exception("watch %s failed", watch_id)
            with self.engine.begin() as conn:
                conn.execute(update(WatchRow).where(WatchRow.id == watch_id).values(
                    last_run_at=datetime.now(UTC), last_status="failed",
                    last_reason=f"internal: {type(e).__name__}"[:255]))

    def deliver_safely(self, delivery_id: str) -> None:
        try:
            self.m.notifier.deliver(delivery_id)
        except Exception:
            log.exception("delivery %s failed", delivery_id)

    # ---- scheduling --------------------------------------------------------------------------------

    def dispatcher(self) -> Dispatcher:
        with self._dispatcher_lock:
            if self._dispatcher is None:
                if self.m.s.redis is not None:
                    from depository.monitoring.jobs import RqDispatcher

                    self._dispatcher = RqDispatcher(self.config, self.m.s.redis)
                else:
                    self._dispatcher = LocalDispatcher(self, self.config.monitor_workers)
            return self._dispatcher

    def claim_due_watches(self, now: datetime | None = None) -> list[str]:
        """Claim every due watch for this period (CAS on next_run_at); returns the claimed ids."""
        now = now or datetime.now(UTC)
        with self.engine.connect() as conn:
            due = conn.execute(select(WatchRow.id, WatchRow.interval_s).where(
                WatchRow.active.is_(True), WatchRow.next_run_at <= now).order_by(WatchRow.next_run_at)
                .limit(CLAIM_BATCH)).all()
        by_interval: dict[int, list[str]] = {}
        for wid, interval in due:
            by_interval.setdefault(interval, []).append(wid)
        claimed: list[str] = []
        with self.engine.begin() as conn:
            for interval, ids in by_interval.items():
                res = conn.execute(update(WatchRow).where(WatchRow.id.in_(ids), WatchRow.next_run_at <= now)
                                   .values(next_run_at=now + timedelta(seconds=interval)).returning(WatchRow.id))
                claimed += list(res.scalars())
        return claimed

    def claim_due_deliveries(self, now: datetime | None = None) -> list[str]:
        now = now or datetime.now(UTC)
        # One statement (no read before the write in the transaction): on SQLite a deferred transaction
        # that reads first cannot always upgrade to a writer, a single UPDATE waits for the lock instead.
        due = (select(DeliveryRow.id).where(DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now)
               .limit(CLAIM_BATCH).scalar_subquery())
        with self.engine.begin() as conn:
            res = conn.execute(update(DeliveryRow).where(DeliveryRow.id.in_(due), DeliveryRow.status == "pending",
                                                         DeliveryRow.next_attempt_at <= now)
                               .values(next_attempt_at=now + timedelta(seconds=DELIVERY_LEASE_S))
                               .returning(DeliveryRow.id))
            return list(res.scalars())

    def tick(self) -> tuple[int, int]:
        """One scheduler round: dispatch due watches and due deliveries; returns how many of each."""
        watches = self.claim_due_watches()
        for wid in watches:
            self.dispatcher().submit_watch(wid)
        deliveries = self.kick_deliveries()
        return len(watches), deliveries

    def kick_deliveries(self) -> int:
        ids = self.claim_due_deliveries()
        for did in ids:
            self.dispatcher().submit_delivery(did)
        return len(ids)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="monitor-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        interval = self.config.monitor_tick_ms / 1000
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("monitoring scheduler tick failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._dispatcher_lock:
            if self._dispatcher is not None:
                self._dispatcher.close()
                self._dispatcher = None
