"""Exactly one integrator at a time.

PostgreSQL: a session-level advisory lock held on a dedicated connection; when the holder dies its
connection drops and the lock is free for another process (automatic takeover). SQLite: an exclusive
`flock` on a file beside the database, released by the kernel when the process dies.

The lock is for liveness only. Safety (never forking the log) comes from the compare-and-set on the
tree size inside the integration transaction (see log.py): even two integrators could not both commit.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from depository.db import is_postgres

ADVISORY_LOCK_KEY = 0x6465706F  # "depo"


class IntegratorLock:
    def __init__(self, engine: Engine, lock_file: Path) -> None:
        self._engine = engine
        self._lock_file = lock_file
        self._conn: Any = None
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if is_postgres(self._engine):
            conn = self._engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def still_held(self) -> bool:
        """True while the lock's connection is alive (a PostgreSQL restart loses the lock)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except Exception:  # the connection died: the lock is gone with it
                self._conn = None
                return False
        return self._fd is not None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            except Exception:  # noqa: S110 - the lock dies with its connection anyway
                pass
            self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
