"""SQLite writers queue on a file lock held from a transaction's first write to its COMMIT or ROLLBACK."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from sqlalchemy import text

from depository.db import make_engine


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_lock_held_from_first_write_until_commit_or_rollback(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    lock = Path(str(db) + "-writers.lock")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert lock_is_free(lock)
    with engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
        assert lock_is_free(lock)  # reads never queue
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not lock_is_free(lock)
    assert lock_is_free(lock)  # released by the commit
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE t SET x = 2"))
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert lock_is_free(lock)  # released by the rollback
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar() == 1
    engine.dispose()


def test_a_second_writer_waits_for_the_first_and_then_proceeds(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    a, b = make_engine(f"sqlite:///{db}"), make_engine(f"sqlite:///{db}")  # as two processes would
    with a.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    order: list[str] = []
    b_waiting = threading.Event()

    def second() -> None:
        with b.begin() as conn:
            b_waiting.set()
            conn.execute(text("INSERT INTO t VALUES (2)"))  # blocks on the queue until `a` commits
            order.append("b wrote")

    with a.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        th = threading.Thread(target=second)
        th.start()
        b_waiting.wait(10)
        th.join(0.3)
        assert th.is_alive() and order == []  # still queued behind our open transaction
        order.append("a commits")
    th.join(20)
    assert order == ["a commits", "b wrote"]
    with a.connect() as conn:
        assert sorted(conn.execute(text("SELECT x FROM t")).scalars()) == [1, 2]
    a.dispose()
    b.dispose()


def test_writers_hold_back_while_a_priority_writer_waits(tmp_path: Path) -> None:
    """The integrator (writer_priority) must not queue behind every API transaction at saturation: while it
    waits it holds the priority lock, and an ordinary writer does not take the database even when free."""
    db = tmp_path / "d.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    waiting_integrator = os.open(Path(str(db) + "-priority.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(waiting_integrator, fcntl.LOCK_EX)  # as another process's integrator announces itself
    wrote = threading.Event()

    def api_write() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        wrote.set()

    th = threading.Thread(target=api_write)
    th.start()
    try:
        assert not wrote.wait(0.3)  # the database is free, but the integrator is first in line
        assert lock_is_free(Path(str(db) + "-writers.lock"))
    finally:
        fcntl.flock(waiting_integrator, fcntl.LOCK_UN)
        os.close(waiting_integrator)
    assert wrote.wait(10)
    th.join(10)
    engine.dispose()


def test_a_waiting_priority_writer_announces_itself_and_then_writes(tmp_path: Path) -> None:
    from depository.db import writer_priority

    db = tmp_path / "d.sqlite"
    holder, integrator = make_engine(f"sqlite:///{db}"), make_engine(f"sqlite:///{db}")  # two processes
    with holder.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    priority_lock = Path(str(db) + "-priority.lock")
    done = threading.Event()

    def integrate() -> None:
        with writer_priority(), integrator.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        done.set()

    with holder.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        th = threading.Thread(target=integrate)
        th.start()
        for _ in range(100):  # it announces itself while it waits for our transaction
            if not lock_is_free(priority_lock):
                break
            time.sleep(0.01)
        assert not lock_is_free(priority_lock)
        assert not done.is_set()
    assert done.wait(10)
    th.join(10)
    assert lock_is_free(priority_lock)  # and withdraws once it has the database
    with holder.connect() as conn:
        assert sorted(conn.execute(text("SELECT x FROM t")).scalars()) == [1, 2]
    holder.dispose()
    integrator.dispose()


def test_priority_is_per_thread_and_ends_with_the_block() -> None:
    from depository import db

    seen: list[bool] = []
    with db.writer_priority():
        seen.append(db._writer_local.priority)
        th = threading.Thread(target=lambda: seen.append(getattr(db._writer_local, "priority", False)))
        th.start()
        th.join()
    seen.append(db._writer_local.priority)
    assert seen == [True, False, False]


def test_commits_leave_the_wal_to_the_background_checkpointer(tmp_path: Path) -> None:
    from depository.db import WAL_AUTOCHECKPOINT_PAGES, WalCheckpointer

    db = tmp_path / "d.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))
    for _ in range(3):  # ~1,500 pages: past SQLite's default autocheckpoint, which copied it back on COMMIT
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": os.urandom(2000)} for _ in range(1000)])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT_PAGES
    checkpointer = WalCheckpointer(engine)
    busy, frames, copied = checkpointer.checkpoint()
    assert busy == 0 and frames > 1000 and copied == frames  # all of it was still waiting in the WAL
    assert checkpointer.checkpoint()[2] == frames  # nothing new since
    engine.dispose()


def test_the_integrator_runs_the_checkpointer(tmp_path: Path) -> None:
    from depository.config import load_config
    from depository.wiring import build_services, init_home

    config = load_config(env={}, home=tmp_path / "h", batch_interval_ms=20)
    init_home(config)
    services = build_services(config, notary=False)
    try:
        services.start_background()
        checkpointer = services.integrator.checkpointer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and checkpointer.checkpoints < 2:
            time.sleep(0.05)
        assert checkpointer.checkpoints >= 2
        services.stop_background()
        assert not checkpointer.is_alive()
    finally:
        services.close()
