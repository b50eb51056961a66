"""SIGKILL of API processes under load (SQLite, one server, gunicorn workers): gunicorn's master starts a
new worker; the kernel frees the integrator's flock when its holder dies and another worker takes it. A
2xx means committed, so nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.faults.harness import Load, flock_holder_pid, group_pids, tenant_key, verify_after_fault, wait_until
from tests.procs import Proc, cli_env, free_port, run_cli


def test_sigkill_api_workers_and_the_integrator_under_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "3", "--threads", "4"], env, tmp_path / "serve.log")
    load: Load | None = None
    try:
        server.wait_http(url + "/healthz")
        load = Load([url], key, batch=100, threads=3).start()
        load.wait_for(500)
        lock_file = home / "integrator.lock"
        killed = []
        for round_ in range(4):
            workers = group_pids(server.p.pid) - {server.p.pid}
            holder = flock_holder_pid(lock_file)
            # Alternate: a worker that only serves requests, then the one that integrates.
            victim = holder if round_ % 2 and holder in workers else min(workers - {holder} or workers)
            os.kill(victim, signal.SIGKILL)
            killed.append((victim, victim == holder))
            before = load.count()
            load.wait_for(before + 500, timeout_s=40)
            wait_until(lambda: flock_holder_pid(lock_file) is not None, 20, "an integrator")
        assert any(was_holder for _, was_holder in killed), killed
        load.stop()
        print(f"killed {len(killed)} API worker processes ({sum(h for _, h in killed)} holding the integrator "
              f"lock); client errors {len(load.errors)}")
        assert server.p.poll() is None  # the master survived and replaced them
        verify_after_fault(env, load.acked, "SIGKILL API workers")
    finally:
        if load is not None:
            load.stop()
        server.stop()
