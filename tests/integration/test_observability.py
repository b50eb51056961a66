"""Observability of a real `depository serve` (gunicorn) on 127.0.0.1: every log line is one JSON object
with time, level, logger, message (and request id, route, status, duration for requests); API key
secrets and console passwords appear nowhere in the logs, even when sent wrongly; `/metrics` carries
the figures an operator pages on; `/healthz` reports database and Redis and turns 503 when Redis goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from depository.client import ClientError, DepositoryClient
from depository.logging_setup import redact
from tests.faults.harness import OwnRedis
from tests.procs import REPO, Proc, cli_env, free_port, run_cli

PASSWORD = "correct horse battery staple 42"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_json_logs_without_secrets_metrics_and_health(tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path / "redis", free_port())
    redis.start()
    env = cli_env(tmp_path / "home", batch_interval_ms="50", redis_url=redis.url, log_format="json")
    run_cli(["init"], env)
    created = json.loads(run_cli(["tenant", "create", "Platform"], env).stdout)
    key, tenant_id = created["api_key"], created["tenant_id"]
    secret = key.rsplit("_", 1)[1]
    subprocess.run([sys.executable, "-m", "cli.main", "user", "create", tenant_id, "ops@example.com",
                    "--password-stdin"], input=PASSWORD + "\n", env=env, cwd=str(REPO), check=True,
                   capture_output=True, text=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log")
    try:
        server.wait_http(url + "/healthz")
        client = DepositoryClient(url, key)
        dep = client.deposit_hashes("other", "ab" * 32, "cd" * 32, wait_s=5)
        client.deposit_batch([{"kind": "other", "sha256": f"{i:064x}", "sm3": "00" * 32} for i in range(50)])
        # Secrets sent where they do not belong: a query string, a wrong header scheme, a tampered key.
        _get(f"{url}/v1/deposits/{dep['id']}?api_key={key}")
        _get(f"{url}/v1/deposits/{dep['id']}", {"Authorization": f"Basic {key}"})
        _get(f"{url}/v1/deposits/{dep['id']}", {"Authorization": f"Bearer {key[:-3]}zzz"})
        _get(f"{url}/v1/deposits/dep_000000000000000000000000", {"Authorization": f"Bearer {key}"})
        try:
            DepositoryClient(url, key + "x").get(dep["id"])
        except ClientError:
            pass
        # Console sign-in, right and wrong password (form post; CSRF fails first without the token, fine).
        for pw in (PASSWORD, PASSWORD + "!"):
            data = f"email=ops%40example.com&password={urllib.request.quote(pw)}".encode()
            try:
                urllib.request.urlopen(urllib.request.Request(f"{url}/console/sign-in", data=data), timeout=10)
            except urllib.error.HTTPError:
                pass
        status, metrics, _ = _get(url + "/metrics")
        assert status == 200
        # Windowed figures are gauges: a histogram's buckets over a sliding window would go down and break rate().
        assert "_bucket" not in metrics and "# TYPE depository_integration_batch_entries gauge" in metrics
        for name in ("depository_deposits_total", 'depository_integration_batch_entries{quantile="0.5"}',
                     'depository_integration_latency_seconds{quantile="0.99"}', "depository_oldest_pending_seconds",
                     "depository_redis_up 1", "depository_integrator_lock_held", "depository_tree_size"):
            assert name in metrics, name
        status, body, headers = _get(url + "/healthz")
        assert status == 200 and json.loads(body)["checks"]["redis"]["status"] == "ok"
        assert headers.get("X-Request-Id") and headers.get("Content-Security-Policy")
        assert headers.get("X-Content-Type-Options") == "nosniff"
        redis.stop()
        status, body, _ = _get(url + "/healthz")
        report = json.loads(body)
        assert status == 503 and report["status"] == "degraded" and report["checks"]["redis"]["status"] == "error"
        assert "depository_redis_up 0" in _get(url + "/metrics")[1]
        # A request id from the caller is kept (and echoed), so a platform can correlate.
        assert _get(url + "/healthz", {"X-Request-Id": "platform-req-77"})[2]["X-Request-Id"] == "platform-req-77"
    finally:
        server.stop()
        redis.stop()
    text = server.log_path.read_text()
    assert secret not in text, "an API key secret reached the logs"
    assert PASSWORD not in text and urllib.request.quote(PASSWORD) not in text, "a password reached the logs"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("depository API on ")]
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    for r in records:
        assert {"time", "level", "logger", "message"} <= set(r), r
    access = [r for r in records if r["logger"] == "depository.access"]
    assert access, "no request was logged"
    deposit_lines = [r for r in access if r.get("route") == "/v1/deposits/<deposit_id>"]
    assert deposit_lines and all({"request_id", "method", "status", "duration_ms"} <= set(r) for r in deposit_lines)
    assert any(r["status"] == 401 for r in deposit_lines) and any(r["status"] == 404 for r in deposit_lines)
    assert any(r.get("request_id") == "platform-req-77" for r in access)
    print(f"{len(records)} JSON log lines, {len(access)} request lines, no secret, no password")


def test_redaction_rules() -> None:
    key = "dpk_" + "0" * 32 + "_" + "A" * 43
    assert redact(f"auth {key} failed") == "auth dpk_" + "0" * 32 + "_[redacted] failed"
    assert "s3cr3t" not in redact("Authorization: Bearer s3cr3tvalue123")
    assert "hunter2" not in redact("login password=hunter2 user=x")
    assert "pw" not in redact("postgresql+psycopg://app:pw@db/x").split("@")[0].split(":")[-1]
    assert redact("nothing secret here: 42 deposits") == "nothing secret here: 42 deposits"
