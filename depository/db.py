"""Database engine: SQLite (WAL) embedded by default, PostgreSQL (psycopg 3) at scale.

The dialect differences the rest of the code must know about are kept here: how to take the write lock
that serialises sequencing (`lock_for_sequencing`) and how migrations are applied.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError as SAIntegrityError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger("depository.db")


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and deferred transactions (see below)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite_files(Path(path))
        # A pool, not a connection per checkout: opening a SQLite connection (and its PRAGMAs) costs
        # milliseconds, which would dominate a proof. Pools are per process (gunicorn loads the app
        # after forking), so no connection crosses a fork.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=8, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy own transactions; WAL lets readers run beside the single writer.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Past 1,000 pages (SQLite's default) nearly every 5,000-deposit batch's COMMIT copied the WAL
            # back into the database, with an fsync, while holding the write lock: a fifth of a batch.
            # The integrator's WalCheckpointer does that in the background; this is the safety net.
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            # Under sustained saturation the WAL restarts only in a gap between writers, so it can grow
            # past that; when it does restart, the file is cut back to this size.
            cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Deferred BEGIN: WAL readers never wait for the writer. Write transactions that read before
            # they write take the write lock first (lock_for_sequencing), so they cannot fail on upgrade.
            conn.exec_driver_sql("BEGIN")

        if path and path != ":memory:":
            _queue_sqlite_writers(engine, Path(path + "-writers.lock"))
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def private_sqlite_files(path: Path) -> None:
    """Create the database file 0600 (in a 0700 directory when this makes it) before SQLite opens it,
    and tighten it and its -wal/-shm if they are looser: SQLite gives the WAL and shared-memory files the
    database file's mode, and deposits, hashes and tenants' metadata are nobody else's to read (issue 18:
    they were 0644 in a 0755 home)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError:
        return  # read-only place or no permission: SQLite will say so itself
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError:
            pass


WAL_AUTOCHECKPOINT_PAGES = 16384  # 64 MiB of WAL before a committing writer checkpoints itself
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
WAL_CHECKPOINT_INTERVAL_S = 0.25


class WalCheckpointer(threading.Thread):
    """Copy SQLite's WAL back into the database in the background, every quarter second.

    PASSIVE checkpoints never wait for readers or writers and hold no write lock, so commits stop paying
    for them; when every frame is copied, the next writer starts the WAL over from its beginning. Run by
    the integrator (one per deployment); on PostgreSQL it does nothing.
    """

    def __init__(self, engine: Engine, interval_s: float = WAL_CHECKPOINT_INTERVAL_S) -> None:
        super().__init__(name="wal-checkpointer", daemon=True)
        self.engine = engine
        self.interval_s = interval_s
        self._stop_event = threading.Event()
        self.checkpoints = 0  # for tests

    def stop(self, timeout: float = 5) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, WAL frames, frames checkpointed), as SQLite reports them."""
        raw = self.engine.raw_connection()
        try:
            row = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[union-attr]
        finally:
            raw.close()
        self.checkpoints += 1
        return tuple(row)

    def run(self) -> None:
        if self.engine.dialect.name != "sqlite":
            return
        while not self._stop_event.wait(self.interval_s):
            try:
                self.checkpoint()
            except Exception:  # the database is busy or going away: the next round tries again
                log.debug("WAL checkpoint failed", exc_info=True)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "insert", "update", "delete", "replace")
_WRITER_POLL_S = 0.0005
_WRITER_WAIT_S = 30.0


def _queue_sqlite_writers(engine: Engine, lock_path: Path) -> None:
    """Make SQLite's writers (API processes, the integrator) wait in a queue, not in a sleep loop.

    SQLite's busy handler retries a locked database after sleeping 1, 2, 5 ... up to 100 ms, so a writer
    often sleeps long after the lock was freed; under intake load that idle time was a large part of each
    batch. Here a transaction's first write statement first takes an exclusive `flock` on a file beside
    the database (per connection: each has its own open file), polled every half millisecond, and commit
    or rollback releases it. SQLite's own locking still decides correctness; this only shortens waits.
    After 30 s the statement goes on and SQLite's busy timeout applies as before.

    The integrator goes first (`writer_priority()`): while it waits it holds a second file lock
    (`-priority.lock`) exclusively, and other writers probe that lock before each try, so at most the
    transaction already running stands between the integrator and the database. Without this, at
    saturation the integrator queued behind every API batch and checkpoints fell seconds behind intake.
    """
    import fcntl
    import os
    import time

    # Per DBAPI connection (sqlite3 connections take no attributes): id -> [lock fd, held, priority fd]
    state: dict[int, list[Any]] = {}
    priority_path = lock_path.with_name(lock_path.name.replace("-writers.lock", "-priority.lock"))

    def _release(conn: Any) -> None:
        # do_commit/do_rollback get the pool's proxy; the close event the sqlite3 connection itself.
        st = state.get(id(getattr(conn, "driver_connection", conn)))
        if st is not None and st[1]:
            fcntl.flock(st[0], fcntl.LOCK_UN)
            st[1] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().startswith(_WRITES):
            return
        dbapi_conn: Any = conn.connection.driver_connection
        st = state.get(id(dbapi_conn))
        if st is None:
            st = state[id(dbapi_conn)] = [os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), False,
                                          os.open(priority_path, os.O_RDWR | os.O_CREAT, 0o600)]
        if st[1]:
            return
        first = getattr(_writer_local, "priority", False)
        deadline = time.monotonic() + _WRITER_WAIT_S
        announced = False
        try:
            while True:
                try:
                    if first and not announced:
                        fcntl.flock(st[2], fcntl.LOCK_EX | fcntl.LOCK_NB)  # "the integrator is waiting"
                        announced = True
                    elif not first:
                        fcntl.flock(st[2], fcntl.LOCK_SH | fcntl.LOCK_NB)  # nobody first in line?
                        fcntl.flock(st[2], fcntl.LOCK_UN)
                    fcntl.flock(st[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
                    st[1] = True
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(_WRITER_POLL_S)
        finally:
            if announced:
                fcntl.flock(st[2], fcntl.LOCK_UN)

    # Released after the database's own COMMIT/ROLLBACK (the "commit" event fires before it, which would
    # hand the next writer a lock SQLite still holds).
    dialect: Any = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def _commit(dbapi_conn: Any) -> None:
        try:
            do_commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def _rollback(dbapi_conn: Any) -> None:
        try:
            do_rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = _commit, _rollback

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, _record: Any) -> None:
        _release(dbapi_conn)  # a connection back in the pool has no transaction: never let it hold the queue

    @event.listens_for(engine, "close")
    def _closed(dbapi_conn: Any, _record: Any) -> None:
        _release(dbapi_conn)
        st = state.pop(id(dbapi_conn), None)
        if st is not None:
            os.close(st[0])
            os.close(st[2])


_writer_local = threading.local()


@contextmanager
def writer_priority() -> Iterator[None]:
    """Write transactions begun by this thread inside the block go ahead of other SQLite writers
    waiting for the database (see `_queue_sqlite_writers`); the integrator's checkpoint writes use it.
    No effect on PostgreSQL, whose writers do not contend for one database-wide lock."""
    before = getattr(_writer_local, "priority", False)
    _writer_local.priority = True
    try:
        yield
    finally:
        _writer_local.priority = before


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def lock_for_sequencing(conn: Connection) -> None:
    """Serialise index assignment: a row lock on PostgreSQL; on SQLite a no-op write that takes the
    database's write lock now, before the reads that decide the indices."""
    if is_postgres(conn):
        conn.exec_driver_sql("SELECT next_index FROM log_sequence WHERE id = 1 FOR UPDATE")
    else:
        conn.exec_driver_sql("UPDATE log_sequence SET next_index = next_index WHERE id = 1")


COPY_MIN_ROWS = 16  # below this many rows, PostgreSQL gets one INSERT (fewer round trips than COPY)


def bulk_insert(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """executemany straight on the driver (sqlite3 / psycopg pipeline): the hot insert of sequencing,
    where building ORM or Core parameter dicts would cost more than the database work."""
    if not rows:
        return
    # Table and column names are code constants, never input.
    cols = ", ".join(f'"{c}"' for c in columns)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if not is_postgres(conn):
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['?'] * len(columns))})"  # noqa: S608
            cur.executemany(sql, rows)
        elif len(rows) > COPY_MIN_ROWS:
            # COPY: several times faster than even pipelined INSERTs for the hot path of sequencing.
            sql = f"COPY {table} ({cols}) FROM STDIN"
            with cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # A few rows (single deposits): one INSERT is one round trip, COPY at least two.
            values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
            sql = f"INSERT INTO {table} ({cols}) VALUES {values}"  # noqa: S608 (constants)
            cur.execute(sql, [v for row in rows for v in row])
    except conn.dialect.dbapi.IntegrityError as e:  # type: ignore[union-attr]
        raise SAIntegrityError(sql, None, e) from e
    finally:
        cur.close()


class ReadConnections:
    """One long-lived, autocommit driver connection per thread for the hottest reads (proofs).

    On PostgreSQL a pooled checkout costs a pre-ping and a rollback round trip, more than the proof's
    own query; a per-thread connection costs one round trip. Results come in binary (bytea as bytes, not
    hex text). A broken connection is dropped and the read retried once on a fresh one. SQLite reads go
    through the pool (a checkout there is a few microseconds).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = is_postgres(engine)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, Any]] = []  # (owning thread, connection)
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(dsn, autocommit=True)
        me = threading.current_thread()
        with self._lock:
            # Threads come and go (the notary's pools are per call): close the connections of threads that
            # have ended, or a busy process would hold one PostgreSQL connection per thread it ever ran
            # (seen: "too many clients already" within a minute of notary load).
            dead = [c for t, c in self._all if not t.is_alive()]
            self._all = [(t, c) for t, c in self._all if t.is_alive()] + [(me, conn)]
        for c in dead:
            c.close()
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = [c for _, c in self._all], []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if not self.postgres:
            with self.engine.connect() as sa_conn:
                cur = sa_conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cur.execute(sql.replace("%s", "?"), params)
                    return list(cur.fetchall())
                finally:
                    cur.close()
        for attempt in (1, 2):
            conn: Any = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                conn = self._local.conn = self._connect()
            try:
                with conn.cursor(binary=True) as cur:
                    cur.execute(sql, params, prepare=True)
                    return list(cur.fetchall())
            except Exception as e:
                import psycopg

                if attempt == 2 or not isinstance(e, psycopg.OperationalError):
                    raise
                self._local.conn = None  # e.g. PostgreSQL restarted: reconnect once
        raise AssertionError("unreachable")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    command.upgrade(alembic_config(url), "heads")
