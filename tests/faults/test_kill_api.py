"""SIGKILL under load (SQLite, one server): of API workers, which gunicorn's master replaces, and of the
background sidecar that holds the integrator's flock, which the master restarts (the kernel frees the flock
when its holder dies, and the new sidecar takes it). API workers never hold the lock. A 2xx means
committed, so nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.faults.harness import (
    Load,
    api_worker_pids,
    flock_holder_pid,
    one_sidecar,
    sidecar_pids,
    tenant_key,
    verify_after_fault,
    wait_until,
)
from tests.procs import Proc, cli_env, free_port, run_cli


def test_sigkill_api_workers_and_the_background_sidecar_under_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "3", "--threads", "4"], env, tmp_path / "serve.log")
    master = server.p.pid
    lock_file = home / "integrator.lock"
    load: Load | None = None
    try:
        server.wait_http(url + "/healthz")
        load = Load([url], key, batch=100, threads=3).start()
        load.wait_for(500)
        killed: list[tuple[str, int]] = []
        for round_ in range(4):
            sidecar = one_sidecar(master)
            wait_until(lambda s=sidecar: flock_holder_pid(lock_file) == s, 30, "the sidecar to hold the lock")
            workers = api_worker_pids(master)
            assert flock_holder_pid(lock_file) not in workers
            # Alternate: an API worker (it only serves requests), then the sidecar (it integrates).
            if round_ % 2 == 0:
                victim, what = min(workers), "api worker"
            else:
                victim, what = sidecar, "sidecar"
            os.kill(victim, signal.SIGKILL)
            killed.append((what, victim))
            before = load.count()
            load.wait_for(before + 500, timeout_s=40)
            if what == "sidecar":
                # The master starts a new one, which takes the lock the kernel freed.
                def restarted_holds(dead: int = victim) -> bool:
                    holder = flock_holder_pid(lock_file)
                    return holder is not None and holder != dead and holder in sidecar_pids(master)

                wait_until(restarted_holds, 40, "a restarted sidecar to hold the integrator lock")
            else:
                wait_until(lambda v=victim: v not in api_worker_pids(master) and len(api_worker_pids(master)) == 3,
                           40, "gunicorn to replace the worker")

        load.stop()
        print(f"killed {[w for w, _ in killed]}; client errors {len(load.errors)}")
        assert server.p.poll() is None  # the master survived and replaced them
        verify_after_fault(env, load.acked, "SIGKILL API workers and the background sidecar")
    finally:
        if load is not None:
            load.stop()
        server.stop()
