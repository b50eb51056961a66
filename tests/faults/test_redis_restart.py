"""Redis stopped and restarted under load (our own redis-server, no persistence: the queued jobs are
lost). Deposits never need Redis, so intake goes on; /healthz says degraded (503) while it is away; the
notary's rq jobs resume when it returns and every checkpoint gets its timestamp (the sweep re-enqueues
what the lost queue held). `depository worker` exits when its Redis dies; like systemd's
Restart=always (deploy/depository-worker@.service), the test starts it again."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.faults.harness import Load, OwnRedis, tenant_key, verify_after_fault, wait_port, wait_until
from tests.procs import Proc, cli_env, free_port, run_cli


def _health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_redis_stopped_and_restarted_under_load(tmp_path: Path, pg_url: str) -> None:
    redis = OwnRedis(tmp_path / "redis", free_port())
    redis.start()
    tsa_port = free_port()
    env = cli_env(tmp_path / "home", database_url=pg_url, redis_url=redis.url, batch_interval_ms="50",
                  tsa_urls=f"http://127.0.0.1:{tsa_port}", notary_retry_max_s="1")
    run_cli(["init"], env)
    key = tenant_key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tsa = Proc(["tsa", "serve", "--port", str(tsa_port)], env, tmp_path / "tsa.log")
    server = Proc(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log")
    workers = [Proc(["worker"], env, tmp_path / "worker-0.log")]
    load: Load | None = None
    engine = create_engine(pg_url)
    stop_supervising = threading.Event()

    def untimestamped() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM checkpoints WHERE NOT timestamped")).scalar_one())

    def stamped() -> int:
        with engine.connect() as conn:
            q = text("SELECT coalesce(max(size), 0) FROM checkpoints WHERE timestamped")
            return int(conn.execute(q).scalar_one())

    try:
        wait_port(tsa_port)
        server.wait_http(url + "/healthz")
        load = Load([url], key, batch=100, threads=3).start()
        load.wait_for(500)
        wait_until(lambda: stamped() > 0, 30, "the worker to stamp the first checkpoints")

        redis.stop()
        errors_before, acked_before = len(load.errors), load.count()
        load.wait_for(acked_before + 500, timeout_s=30)  # intake goes on without Redis
        status, report = _health(url)
        assert status == 503 and report["checks"]["redis"]["status"] == "error", report
        assert len(load.errors) == errors_before, load.errors[errors_before:][:3]
        down_acked = load.count() - acked_before

        redis.start()  # same port, empty: every queued job is gone

        def supervise() -> None:
            """What systemd's Restart=always does for depository-worker@.service."""
            while not stop_supervising.wait(0.5):
                if workers[-1].p.poll() is not None:
                    workers.append(Proc(["worker"], env, tmp_path / f"worker-{len(workers)}.log"))

        supervisor = threading.Thread(target=supervise, daemon=True)
        supervisor.start()
        load.wait_for(load.count() + 300, timeout_s=30)
        load.stop()
        t = time.monotonic()
        try:
            wait_until(lambda: untimestamped() == 0, 45, "every checkpoint to be stamped after Redis returned")
        except AssertionError:
            tails = "\n".join(w.log_path.read_text()[-1500:] for w in workers)
            raise AssertionError(f"{untimestamped()} checkpoints unstamped; workers' logs:\n{tails}") from None
        finally:
            stop_supervising.set()
            supervisor.join(5)
        wait_until(lambda: _health(url)[0] == 200, 20, "/healthz to be ok again")
        print(f"Redis down: {down_acked} deposits acknowledged meanwhile, 0 errors; worker restarts "
              f"{len(workers) - 1}; all checkpoints stamped {time.monotonic() - t:.1f} s after the load stopped")
        verify_after_fault(env, load.acked, "Redis restart")
    finally:
        stop_supervising.set()
        if load is not None:
            load.stop()
        engine.dispose()
        for w in workers:
            w.stop()
        server.stop()
        tsa.stop()
        redis.stop()
