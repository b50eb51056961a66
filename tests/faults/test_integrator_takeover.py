"""The production layout on 127.0.0.1: two `depository serve` (gunicorn API workers + one background
sidecar each) and one `depository worker` (rq) on PostgreSQL and Redis, with our TSA. Under load:

1. SIGKILL the background sidecar that holds the integrator's advisory lock: its session ends, and the
   lock goes to the other server's sidecar or to the restarted one; the tree keeps growing.
2. SIGKILL the whole server whose sidecar now holds the lock: the other server's sidecar takes it.

The lock holder is always a sidecar, never an API worker; every acknowledged deposit is in the log
exactly once, and the worker stamps every checkpoint.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.faults.harness import (
    Load,
    OwnRedis,
    api_worker_pids,
    group_pids,
    lock_holder_pid,
    one_sidecar,
    sidecar_pids,
    tenant_key,
    tree_size,
    verify_after_fault,
    wait_port,
    wait_sidecar_started,
    wait_until,
)
from tests.procs import Proc, cli_env, free_port, run_cli


def test_sigkill_lock_holder_other_server_takes_over(tmp_path: Path, pg_url: str) -> None:
    redis = OwnRedis(tmp_path / "redis", free_port())
    redis.start()
    tsa_port = free_port()
    env = cli_env(tmp_path / "home", database_url=pg_url, redis_url=redis.url, batch_interval_ms="50",
                  tsa_urls=f"http://127.0.0.1:{tsa_port}", notary_retry_max_s="1", log_origin="ha.example/log")
    run_cli(["init"], env)
    key = tenant_key(env)
    ports = [free_port(), free_port()]
    procs: list[Proc] = []
    load: Load | None = None
    try:
        procs.append(Proc(["tsa", "serve", "--port", str(tsa_port)], env, tmp_path / "tsa.log"))
        wait_port(tsa_port)
        servers = {p: Proc(["serve", "--port", str(p), "--workers", "2", "--threads", "4"], env,
                           tmp_path / f"serve-{p}.log") for p in ports}
        procs += servers.values()
        worker = Proc(["worker"], env, tmp_path / "worker.log")
        procs.append(worker)
        for p, proc in servers.items():
            proc.wait_http(f"http://127.0.0.1:{p}/healthz")
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        load = Load(urls, key, batch=100, threads=4).start()
        load.wait_for(1000)

        def holder_server() -> tuple[int, Proc, int] | None:
            """(port, server, sidecar pid) of the server whose sidecar holds the lock, if any."""
            pid = lock_holder_pid(pg_url)
            for port, proc in servers.items():
                if pid is not None and pid in sidecar_pids(proc.p.pid):
                    assert pid not in api_worker_pids(proc.p.pid)
                    return port, proc, pid
            assert pid is None or all(pid not in group_pids(proc.p.pid) for proc in servers.values()), (
                f"lock holder {pid} is a server process but not its sidecar")
            return None

        # 1. SIGKILL the sidecar holding the lock.
        wait_until(lambda: holder_server() is not None, 30, "a sidecar to hold the lock")
        first = holder_server()
        assert first is not None
        _, first_server, first_sidecar = first
        size_at_kill = tree_size(pg_url)
        acked_at_kill = load.count()
        os.kill(first_sidecar, signal.SIGKILL)

        def new_holder() -> bool:
            h = holder_server()
            return h is not None and h[2] != first_sidecar

        wait_until(new_holder, 30, "another sidecar to take the integrator lock")
        second = holder_server()
        assert second is not None
        how = "the restarted sidecar" if second[1] is first_server else "the other server's sidecar"
        load.wait_for(acked_at_kill + 1000, timeout_s=30)
        wait_until(lambda: tree_size(pg_url) > size_at_kill + 500, 30, "the tree to grow after the sidecar kill")
        # Restarted in any case (exactly one per server); let it boot before the next fault.
        wait_sidecar_started(first_server.log_path, one_sidecar(first_server.p.pid))
        print(f"sidecar {first_sidecar} SIGKILLed; lock taken by {how} ({second[2]})")

        # 2. SIGKILL the whole server whose sidecar holds the lock now.
        (dead_port, dead, holder) = second
        survivor_port = next(p for p in ports if p != dead_port)
        survivor = servers[survivor_port]
        size_at_kill = tree_size(pg_url)
        acked_at_kill = load.count()
        t_kill = time.monotonic()
        dead.kill(signal.SIGKILL)  # the master, every API worker and the sidecar, at once

        def taken_over() -> bool:
            pid = lock_holder_pid(pg_url)
            return pid is not None and pid in sidecar_pids(survivor.p.pid)

        takeover_s = wait_until(taken_over, 30, "the surviving server's sidecar to take the integrator lock")
        # The tree keeps growing under the new integrator while the load goes on against the survivor.
        load.wait_for(acked_at_kill + 1000, timeout_s=30)
        wait_until(lambda: tree_size(pg_url) > size_at_kill + 500, 30, "the tree to grow after the takeover")
        load.stop()
        elapsed = time.monotonic() - t_kill
        print(f"integrator lock held by pid {holder} (server :{dead_port}); SIGKILLed; taken over by server "
              f":{survivor_port} in {takeover_s:.2f} s; tree {size_at_kill} -> {tree_size(pg_url)} "
              f"within {elapsed:.1f} s; client errors during the kill: {len(load.errors)}")
        verify_after_fault(env, load.acked, "integrator takeover")
        # The rq worker stamps every checkpoint (including those of the new integrator).
        engine = create_engine(pg_url)
        try:
            def all_stamped() -> bool:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT count(*) FROM checkpoints WHERE NOT timestamped")).scalar() == 0
            wait_until(all_stamped, 40, "the worker to timestamp every checkpoint")
        finally:
            engine.dispose()
        assert "Traceback" not in survivor.log_path.read_text()
    finally:
        if load is not None:
            load.stop()
        for proc in procs:
            proc.stop()
        redis.stop()

