"""Expensive routes per API key (issue 21): a whole scan has one time budget (not 10 s per image), one key
runs at most two scans (or packets) at once and within its scan rate, and another tenant's deposits go
on meanwhile. Against a real site on 127.0.0.1; no timing is asserted, only who was answered what."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.conftest import auth
from tests.integration.test_monitoring_api import make_env
from tests.integration.test_monitoring_web import Site, page


def _stalling(release: threading.Event) -> Any:
    def handler(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        release.wait(20)
        body = page("slow page", "a few words " * 30).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return handler


def test_a_scan_has_one_deadline_for_all_its_fetches(tmp_path: Path) -> None:
    site = Site()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", scan_deadline_s=1.5, fetch_timeout_s=1.0)
    never = threading.Event()
    try:
        images = [site.add_raw(f"/img{i}.png", _stalling(never)) for i in range(30)]
        url = site.add("/gallery", page("gallery", "", images))
        r = env["client"].post("/v1/scans", headers=auth(env["tenant"][1]), json={"url": url})
        assert r.status_code == 200, r.text
        fetches = r.json["fetches"]
        reasons = [f["reason"] for f in fetches if f["role"] == "image"]
        # Each image would take its own 1 s timeout: 30 s in all. The scan's 1.5 s budget stops it early.
        assert "scan-deadline" in reasons and len(reasons) < 30, reasons
        assert sum(1 for x in reasons if x == "timeout") <= 3, reasons
    finally:
        never.set()
        env["s"].close()
        site.close()


def test_one_key_cannot_occupy_every_worker_with_scans(tmp_path: Path) -> None:
    site = Site()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", fetch_timeout_s=30.0, scan_rate_per_minute=600)
    release = threading.Event()
    client, (_, key), (_, other_key) = env["client"], env["tenant"], env["other"]
    try:
        slow = site.add_raw("/slow", _stalling(release))
        answers: list[int] = []

        def scan() -> None:
            answers.append(env["client"].post("/v1/scans", headers=auth(key), json={"url": slow}).status_code)

        running = [threading.Thread(target=scan) for _ in range(2)]
        for t in running:
            t.start()
        for _ in range(200):  # both scans are inside the route (holding their slots) before the third
            if env["client"].application.extensions.get("expensive_limiter") is not None and \
                    env["client"].application.extensions["expensive_limiter"].running(
                        env["s"].tenants.authenticate(f"Bearer {key}").key_id) == 2:
                break
            release.wait(0.05)
        third = client.post("/v1/scans", headers=auth(key), json={"url": slow})
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert third.mimetype == "application/problem+json"
        # Another tenant is served meanwhile: a deposit, and a scan of its own.
        dep = client.post("/v1/deposits", headers=auth(other_key), json={
            "kind": "other", "sha256": "ab" * 32, "sm3": "cd" * 32})
        assert dep.status_code == 201
        release.set()
        for t in running:
            t.join(30)
        assert answers == [200, 200]
        assert client.post("/v1/scans", headers=auth(key), json={"url": slow}).status_code == 200  # slots freed
    finally:
        release.set()
        env["s"].close()
        site.close()


def test_scans_per_key_are_rate_limited(tmp_path: Path) -> None:
    site = Site()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", scan_rate_per_minute=2)
    try:
        url = site.add("/p", page("p", "words " * 40))
        client, (_, key), (_, other_key) = env["client"], env["tenant"], env["other"]
        assert client.post("/v1/scans", headers=auth(key), json={"url": url}).status_code == 200
        r = client.post("/v1/scans", headers=auth(key), json={"url": url})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert client.post("/v1/scans", headers=auth(other_key), json={"url": url}).status_code == 200
    finally:
        env["s"].close()
        site.close()
