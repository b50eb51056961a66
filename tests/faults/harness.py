"""What every fault test shares: a load generator that records what was acknowledged, and the checks
that must hold afterwards whatever was killed.

The checks (issue 8): every acknowledged deposit is in the log exactly once with its own leaf; every
stored checkpoint is consistent with the latest; `depository audit` (the CLI, a separate process) is
clean; and the counts are printed, acknowledged vs found.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, func, select, text

from depository.audit import audit
from depository.client import ClientError, DepositoryClient
from depository.config import load_config
from depository.integrator_lock import ADVISORY_LOCK_KEY
from depository.models import CheckpointRow, DepositRow, LogEntry
from depository.wiring import build_services
from evidence import merkle
from evidence.checkpoint import SignedCheckpoint
from evidence.leaf import LeafData
from tests.logfill import trust
from tests.procs import run_cli


@dataclass
class Load:
    """Client threads sending hash-only batches to the given URLs (failing over between them).

    Only a 2xx answer counts as acknowledged; a reset, a 5xx or a timeout is counted as an error and the
    deposits of that request are not expected anywhere (but may be there: the check is one-way, plus
    "exactly once").
    """

    urls: Sequence[str]
    key: str
    batch: int = 100
    threads: int = 3
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, n: int) -> None:
        i = n
        while not self._stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            client = DepositoryClient(url, self.key, timeout_s=15)
            items = [{"kind": "other", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32)}
                     for _ in range(self.batch)]
            try:
                got = client.deposit_batch(items)
            except ClientError as e:
                with self._lock:
                    self.errors.append(str(e))
                time.sleep(0.1)
                continue
            with self._lock:
                for sent, d in zip(items, got, strict=True):
                    assert d["sha256"] == sent["sha256"]
                    self.acked[d["id"]] = d

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_for(self, n: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count() < n:
            assert time.monotonic() < deadline, f"only {self.count()} acknowledged; errors {self.errors[-3:]}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def verify_after_fault(env: dict[str, str], acked: dict[str, dict[str, Any]], label: str,
                       *, integrate_timeout_s: float = 40) -> dict[str, int]:
    """The invariants after any fault; prints and returns the counts."""
    s = build_services(load_config(env=env), notary=False)
    try:
        _size, nxt = s.log.sizes()
        assert s.log.wait_for_size(nxt, integrate_timeout_s), "integration did not catch up"
        with s.engine.connect() as conn:
            rows = {}
            ids = list(acked)
            for i in range(0, len(ids), 900):
                rows.update({r.id: r for r in conn.execute(
                    select(DepositRow.id, DepositRow.leaf_index).where(DepositRow.id.in_(ids[i:i + 900])))})
            n_entries = conn.execute(select(func.count()).select_from(LogEntry)).scalar_one()
            n_identities = conn.execute(select(func.count(func.distinct(LogEntry.identity)))).scalar_one()
            by_identity = dict(conn.execute(select(LogEntry.identity, LogEntry.idx)
                                            .where(LogEntry.identity.in_(ids[:900]))).all())
            notes = [r.note for r in conn.execute(select(CheckpointRow.note).order_by(CheckpointRow.size))]
        found = 0
        for dep_id, d in acked.items():
            row = rows.get(dep_id)
            assert row is not None, f"acknowledged deposit {dep_id} is missing"
            assert row.leaf_index == d["leaf_index"]
            if dep_id in by_identity:
                assert by_identity[dep_id] == row.leaf_index
            found += 1
        # Leaves of a sample: the right deposit, the right hashes.
        for dep_id in list(acked)[:: max(1, len(acked) // 200)]:
            leaf = LeafData.from_bytes(s.log.leaf_data(acked[dep_id]["leaf_index"]))
            assert leaf.id == dep_id and leaf.sha256.hex() == acked[dep_id]["sha256"]
        assert n_entries == n_identities == nxt, "an identity is in the log twice, or an index is missing"
        # Checkpoints: strictly growing sizes, each consistent with the latest.
        cps = [SignedCheckpoint.from_text(n).checkpoint for n in notes]
        sizes = [c.size for c in cps]
        assert sizes == sorted(set(sizes))
        latest = cps[-1]
        for cp in cps[1:-1]:
            proof = s.log.consistency_proof(cp.size, latest.size)
            merkle.verify_consistency(merkle.SHA256, cp.size, latest.size, proof, cp.root_hash, latest.root_hash)
        rep = audit(s.engine, trust(s))
        assert rep.ok, rep.problems
    finally:
        s.close()
    out = run_cli(["audit"], env, timeout=300)  # the operator's command, in its own process
    assert out.returncode == 0, out.stdout + out.stderr
    counts = {"acknowledged": len(acked), "found": found, "log_entries": n_entries, "checkpoints": len(cps)}
    print(f"[{label}] acknowledged {len(acked)}, found {found} (each exactly once), log entries {n_entries}, "
          f"checkpoints {len(cps)} consistent, audit clean")
    assert found == len(acked)
    return counts


def tenant_key(env: dict[str, str], name: str = "Platform", *extra: str) -> str:
    return str(json.loads(run_cli(["tenant", "create", name, *extra], env).stdout)["api_key"])


# ---- who holds the integrator lock -----------------------------------------------------------------------

def lock_holder_pid(db_url: str) -> int | None:
    """The OS pid of the client process whose PostgreSQL session holds the integrator's advisory lock.

    pg_locks names the *backend* pid; pg_stat_activity gives that backend's client port; the process on
    this machine with a TCP connection from that port to PostgreSQL is the holder.
    """
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"k": ADVISORY_LOCK_KEY}).first()
    finally:
        engine.dispose()
    if row is None or row.client_port is None:
        return None
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == row.client_port and conn.pid:
            return int(conn.pid)
    return None


def flock_holder_pid(lock_file: Path) -> int | None:
    """The pid holding an exclusive flock on `lock_file` (from /proc/locks, by inode)."""
    inode = os.stat(lock_file).st_ino
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            # e.g. "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
            if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
                return int(parts[4])
    return None


def group_pids(leader: int) -> set[int]:
    """The pids of the process group led by `leader` (a server: gunicorn's master, its API workers and its
    background sidecar)."""
    out = set()
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == leader:
                out.add(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def sidecar_pids(master: int) -> set[int]:
    """The background sidecar(s) of a `depository serve` master: its children running depository.background."""
    return {c.pid for c in _children(master) if "depository.background" in " ".join(_cmdline(c))}


def api_worker_pids(master: int) -> set[int]:
    """The gunicorn API workers of a `depository serve` master: its children other than the sidecar."""
    return {c.pid for c in _children(master)} - sidecar_pids(master)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(pid).children() if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def one_sidecar(master: int, timeout_s: float = 60) -> int:
    """Wait until the master has exactly one sidecar; its pid."""
    wait_until(lambda: len(sidecar_pids(master)) == 1, timeout_s, f"one background sidecar of {master}")
    (pid,) = sidecar_pids(master)
    return pid


def wait_sidecar_started(log_path: Path, pid: int, timeout_s: float = 60) -> None:
    """Wait for the sidecar `pid` to log (JSON, in its server's log) that its background work runs."""
    def started() -> bool:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"background work started' in line and f'"pid":{pid}' in line:
                return True
        return False

    wait_until(started, timeout_s, f"sidecar {pid} to start its background work")


def wait_port(port: int, timeout_s: float = 30) -> None:
    import socket

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(up, timeout_s, f"port {port}")


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - start


def tree_size(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT size FROM log_tree WHERE id = 1")).scalar_one())
    finally:
        engine.dispose()


# ---- our own PostgreSQL and Redis (never the machine's shared ones) ------------------------------------

def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin"


class OwnPostgres:
    """A throwaway PostgreSQL cluster on a free port, owned by the `postgres` user, in a temp directory.

    Restarting it is the fault; the machine's shared cluster is never touched.
    """

    def __init__(self, port: int) -> None:
        # Not under pytest's tmp_path: its parents are root-only (0700) and the server runs as postgres.
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="depository-pg-"))
        self.port = port
        self.data = self.root / "pgdata"
        self.sock = self.root / "sock"
        self.logfile = self.root / "pg.log"

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> OwnPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        out = self._as_postgres(str(_pg_bin() / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                "--no-sync", "-E", "UTF8")
        assert out.returncode == 0, out.stderr
        return self

    def start(self) -> None:
        out = self._as_postgres(str(_pg_bin() / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w",
                                "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on",
                                "start")
        assert out.returncode == 0, out.stdout + out.stderr + self.logfile.read_text()[-2000:]

    def restart(self) -> None:
        # -l: the server's output goes to the log file, not to our pipe (which would then never close).
        out = self._as_postgres(str(_pg_bin() / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-m",
                                "fast", "-w", "restart",
                                "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1")
        assert out.returncode == 0, out.stdout + out.stderr

    def stop(self) -> None:
        """Stop the cluster and delete it (it was never anyone else's)."""
        self._as_postgres(str(_pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


class OwnRedis:
    """A redis-server on a free port with no persistence: a restart loses every queued job."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        r = redis.Redis(port=self.port)
        try:
            wait_until(lambda: _pings(r), 20, "redis-server")
        finally:
            r.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _pings(r: Any) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False
