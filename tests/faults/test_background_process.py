"""The background process (integrator, notary, monitoring) beside the API, with real processes on 127.0.0.1.

- `depository serve` runs exactly one sidecar; API workers never hold the integrator lock; SIGKILL of the
  sidecar gets it restarted by the master (API workers untouched) and integration goes on (PostgreSQL).
- The sidecar exits by itself when its master is SIGKILLed, freeing the lock (SQLite flock).
- Plain gunicorn with deploy/gunicorn.conf.py gets the same sidecar; SIGHUP replaces it; SIGTERM to the
  master alone stops it.
- `serve --background none` + `depository background` (standalone units); `/metrics` says whether any
  process holds the lock, on SQLite and PostgreSQL; SIGTERM releases it.
- `serve --background in-process` keeps the old layout (API workers integrate, no sidecar).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from depository.client import DepositoryClient
from depository.config import load_config
from depository.wiring import build_services
from tests.faults.harness import (
    api_worker_pids,
    flock_holder_pid,
    lock_holder_pid,
    one_sidecar,
    sidecar_pids,
    tenant_key,
    wait_sidecar_started,
    wait_until,
)
from tests.procs import REPO, Proc, cli_env, free_port, run_cli


def _lock_metric(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("depository_integrator_lock_held ")]
    return int(line.split()[1])


def _integrated(env: dict[str, str], timeout_s: float = 30) -> None:
    """Everything sequenced so far gets integrated (by whichever process holds the lock)."""
    s = build_services(load_config(env=env), notary=False)
    try:
        _size, nxt = s.log.sizes()
        assert s.log.wait_for_size(nxt, timeout_s), "nothing integrated the pending entries"
    finally:
        s.close()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sidecar_restarted_after_sigkill_api_workers_never_hold_the_lock(tmp_path: Path, pg_url: str) -> None:
    env = cli_env(tmp_path / "home", database_url=pg_url, batch_interval_ms="50", log_origin="bg.example/log")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "2", "--threads", "2"], env, tmp_path / "serve.log")
    master = server.p.pid
    try:
        server.wait_http(url + "/healthz")
        sidecar = one_sidecar(master)
        wait_until(lambda: lock_holder_pid(pg_url) == sidecar, 30, "the sidecar to hold the advisory lock")
        workers = api_worker_pids(master)
        assert len(workers) == 2 and sidecar not in workers and lock_holder_pid(pg_url) not in workers
        assert all(_lock_metric(url) == 1 for _ in range(4))  # whichever API worker answers
        client = DepositoryClient(url, key)
        client.deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "00" * 32} for i in range(20)])
        _integrated(env)

        os.kill(sidecar, signal.SIGKILL)
        wait_until(lambda: sidecar_pids(master) - {sidecar} != set(), 30, "the master to restart the sidecar")
        restarted = one_sidecar(master)
        assert restarted != sidecar
        wait_until(lambda: lock_holder_pid(pg_url) == restarted, 30, "the restarted sidecar to take the lock")
        assert api_worker_pids(master) == workers  # the API workers were not disturbed
        client.deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "11" * 32} for i in range(20)])
        _integrated(env)
        assert _lock_metric(url) == 1
        assert server.p.poll() is None
        print(f"sidecar {sidecar} SIGKILLed, restarted as {restarted}; API workers {sorted(workers)} untouched")
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert f"background sidecar (pid {sidecar}) exited" in log


def test_sidecar_exits_when_its_master_dies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    port = free_port()
    server = Proc(["serve", "--port", str(port), "--workers", "1", "--threads", "2"], env, tmp_path / "serve.log")
    try:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        sidecar = one_sidecar(server.p.pid)
        wait_sidecar_started(server.log_path, sidecar)
        wait_until(lambda: flock_holder_pid(home / "integrator.lock") == sidecar, 30, "the sidecar to hold the lock")
        os.kill(server.p.pid, signal.SIGKILL)  # the master alone: nobody will stop the sidecar for it
        wait_until(lambda: _gone(sidecar), 30, "the orphaned sidecar to exit")
        assert flock_holder_pid(home / "integrator.lock") is None
    finally:
        server.stop()


def test_plain_gunicorn_conf_runs_one_sidecar_and_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env_g = dict(env, DEPOSITORY_BIND=f"127.0.0.1:{port}", DEPOSITORY_WORKERS="2", DEPOSITORY_THREADS="2")
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "deploy" / "gunicorn.conf.py"),
                              "depository.app:create_app()"], env=env_g, cwd=str(REPO), stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            assert p.poll() is None, log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    return True
            except OSError:
                return False

        wait_until(up, 90, "gunicorn to answer")
        sidecar = one_sidecar(p.pid)
        lock_file = home / "integrator.lock"
        wait_until(lambda: flock_holder_pid(lock_file) == sidecar, 30, "the sidecar to hold the lock")
        assert flock_holder_pid(lock_file) not in api_worker_pids(p.pid)
        DepositoryClient(url, key).deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "22" * 32}
                                                  for i in range(10)])
        _integrated(env)
        # SIGHUP: gunicorn reloads (runs the config file again: same bind, taken from the remembered
        # variables), new API workers, and a new sidecar with the new code.
        os.kill(p.pid, signal.SIGHUP)
        wait_until(lambda: sidecar_pids(p.pid) - {sidecar} != set(), 60, "a new sidecar after SIGHUP")
        sidecar = one_sidecar(p.pid)
        wait_until(lambda: flock_holder_pid(lock_file) == sidecar, 30, "the new sidecar to hold the lock")
        wait_until(up, 30, "gunicorn to answer on the same address after SIGHUP")
        os.kill(p.pid, signal.SIGTERM)  # the master alone, as `docker stop` does
        assert p.wait(timeout=60) == 0
        assert _gone(sidecar) and flock_holder_pid(lock_file) is None
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
    assert "background sidecar (pid" in log_path.read_text()


def test_standalone_background_and_the_lock_metric(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    env = cli_env(home, database_url=db_url, batch_interval_ms="50", log_origin="standalone.example/log")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = Proc(["serve", "--port", str(port), "--workers", "2", "--background", "none"], env, tmp_path / "api.log")
    bg: Proc | None = None
    try:
        api.wait_http(url + "/healthz")
        assert sidecar_pids(api.p.pid) == set()
        assert _lock_metric(url) == 0  # nothing integrates yet
        DepositoryClient(url, key).deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "33" * 32}
                                                  for i in range(10)])
        bg = Proc(["background"], env, tmp_path / "background.log")
        wait_until(lambda: _lock_metric(url) == 1, 60, "the background process to take the lock")
        _integrated(env)
        bg.p.send_signal(signal.SIGTERM)
        assert bg.p.wait(timeout=60) == 0
        assert _lock_metric(url) == 0  # released on the way out
        assert "background work stopped" in bg.log_path.read_text()
    finally:
        if bg is not None:
            bg.stop()
        api.stop()


def test_in_process_mode_keeps_background_work_in_api_workers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "2", "--background", "in-process"], env,
                  tmp_path / "serve.log")
    try:
        server.wait_http(url + "/healthz")
        lock_file = home / "integrator.lock"
        wait_until(lambda: flock_holder_pid(lock_file) in api_worker_pids(server.p.pid), 30,
                   "an API worker to hold the lock")
        assert sidecar_pids(server.p.pid) == set()
        DepositoryClient(url, key).deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "44" * 32}
                                                  for i in range(10)])
        _integrated(env)
        assert _lock_metric(url) == 1
    finally:
        server.stop()
