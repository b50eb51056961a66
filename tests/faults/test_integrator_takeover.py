"""The production layout on 127.0.0.1: two `depository serve` (gunicorn) processes and one `depository
worker` (rq) on PostgreSQL and Redis, with our TSA. SIGKILL the whole server whose process holds the
integrator's advisory lock, under load: the other server's process takes the lock, the tree keeps
growing, every acknowledged deposit is in the log exactly once, and the worker stamps every checkpoint.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.faults.harness import (
    Load,
    OwnRedis,
    group_pids,
    lock_holder_pid,
    tenant_key,
    tree_size,
    verify_after_fault,
    wait_port,
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

        wait_until(lambda: lock_holder_pid(pg_url) is not None, 20, "a lock holder")
        holder = lock_holder_pid(pg_url)
        group = {p: proc for p, proc in servers.items() if holder in group_pids(proc.p.pid)}
        assert len(group) == 1, f"lock holder {holder} belongs to no server"
        (dead_port, dead), = group.items()
        survivor_port = next(p for p in ports if p != dead_port)
        survivor = servers[survivor_port]
        size_at_kill = tree_size(pg_url)
        acked_at_kill = load.count()
        t_kill = time.monotonic()
        dead.kill(signal.SIGKILL)  # the master and every worker of that server, at once

        def taken_over() -> bool:
            pid = lock_holder_pid(pg_url)
            return pid is not None and pid in group_pids(survivor.p.pid)

        takeover_s = wait_until(taken_over, 20, "the surviving server to take the integrator lock")
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

