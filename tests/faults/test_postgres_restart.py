"""PostgreSQL restarted under load: our own throwaway cluster (initdb on a free port, as user postgres),
restarted with `pg_ctl restart -m fast` while deposits stream in. Requests in flight fail (no 2xx, so
nothing is acknowledged that is not committed); the pool's pre-ping replaces dead connections; the
integrator notices its lock's session died and takes the lock again; intake resumes."""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.harness import Load, OwnPostgres, tenant_key, tree_size, verify_after_fault, wait_until
from tests.procs import Proc, cli_env, free_port, run_cli


def test_postgres_restarted_under_load(tmp_path: Path) -> None:
    pg = OwnPostgres(free_port()).init()
    pg.start()
    try:
        env = cli_env(tmp_path / "home", database_url=pg.url, batch_interval_ms="50")
        run_cli(["init"], env)
        key = tenant_key(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = Proc(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log")
        load: Load | None = None
        try:
            server.wait_http(url + "/healthz")
            load = Load([url], key, batch=100, threads=3).start()
            load.wait_for(800)
            t = time.monotonic()
            pg.restart()
            restart_s = time.monotonic() - t
            acked_at_restart = load.count()
            load.wait_for(acked_at_restart + 800, timeout_s=40)
            size_after = tree_size(pg.url)
            wait_until(lambda: tree_size(pg.url) > size_after, 30, "integration to resume")
            load.stop()
            print(f"PostgreSQL restart took {restart_s:.1f} s; failed requests {len(load.errors)} "
                  f"(e.g. {load.errors[:1]}); intake and integration resumed")
            verify_after_fault(env, load.acked, "PostgreSQL restart")
            assert server.p.poll() is None
        finally:
            if load is not None:
                load.stop()
            server.stop()
    finally:
        pg.stop()
