"""The background integration loop and the lock that keeps it single (docs/deploy.md, "Why one integrator")."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import Engine

from depository.db import WalCheckpointer
from depository.integrator_lock import IntegratorLock
from depository.integrity import IntegrationHalted
from depository.log import Log

log = logging.getLogger(__name__)
HALT_POLL_S = 2.0  # how often a halted integrator looks whether an audit or an operator resumed it


class Integrator(threading.Thread):
    """Background integration loop: a batch closes after `max_entries` or `interval_ms`, whichever first."""

    def __init__(self, the_log: Log, lock: IntegratorLock, *, max_entries: int, interval_ms: int) -> None:
        super().__init__(name="integrator", daemon=True)
        self.log = the_log
        self.lock = lock
        self.max_entries = max_entries
        self.interval_s = interval_ms / 1000
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.checkpointer = WalCheckpointer(the_log.engine)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout)
        self.lock.release()

    def run(self) -> None:
        self.checkpointer.start()  # SQLite: commits no longer copy the WAL back into the database
        try:
            self._loop()
        finally:
            self.checkpointer.stop()

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            try:
                if not self.lock.try_acquire() or not self.lock.still_held():
                    self._stop_event.wait(1.0)
                    continue
                size, nxt = self.log.sizes()
                if nxt - size >= self.max_entries:
                    self.log.integrate(self.max_entries)
                    continue
                if nxt > size:
                    # A batch is open: give it until the interval closes it, unless it fills first.
                    self._wake.wait(self.interval_s)
                    self._wake.clear()
                    self.log.integrate(self.max_entries)
                    continue
                self._wake.wait(self.interval_s)
                self._wake.clear()
            except IntegrationHalted:
                # Logged once, loudly, when the halt was raised; look again now and then for its clearing.
                self._stop_event.wait(HALT_POLL_S)
            except Exception:
                log.exception("integration failed; retrying")
                self._stop_event.wait(1.0)


def integrator_lock_for(engine: Engine, home: Path) -> IntegratorLock:
    return IntegratorLock(engine, home / "integrator.lock")
