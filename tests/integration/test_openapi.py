"""`/openapi.json` describes every API route (compared with Flask's URL map), and schemathesis finds no
500 when it fuzzes them against a real server with a real API key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# HTML pages of the console and the public verify page are not part of the JSON API.
NOT_API = re.compile(r"^/(console|static|verify|login|logout)(/|$)|^/$")


def _rules(app: Any) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        if NOT_API.match(path) or rule.endpoint == "static" or rule.endpoint.startswith("console"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def test_openapi_describes_exactly_the_api_routes(client: Any, app: Any) -> None:
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    verbs = {"get", "post", "put", "delete", "patch"}
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops if m in verbs}
    assert described == _rules(app)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """One fuzzing run (on SQLite, for CI time); PostgreSQL-only 500s such as NUL bytes in text are
    covered by the explicit bad-input tests, which run on both."""
    from depository.app import create_app
    from depository.config import load_config
    from depository.server import run_dev_server
    from depository.wiring import build_services, init_home

    config = load_config(env={}, home=tmp_path / "home", batch_interval_ms=20)
    init_home(config)
    services = build_services(config)
    _, key = services.tenants.create("Fuzz")
    server = run_dev_server(create_app(config, services), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        exe = Path(sys.executable).parent / "schemathesis"
        res = subprocess.run(
            [str(exe), "run", f"{url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "25",
             "-H", f"Authorization: Bearer {key}", "--phases", "examples,coverage,fuzzing",
             "--workers", "1", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    finally:
        server.shutdown()
        services.close()
