"""Alert notifications against real receivers on 127.0.0.1: a webhook server (signatures checked with the
`standardwebhooks` verifier), retries with backoff and dead letters, email through aiosmtpd; and the rq path
(watch jobs on real Redis, run by an rq worker).
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from rq import Queue, SimpleWorker
from standardwebhooks.webhooks import Webhook

from depository.monitoring import jobs
from tests.conftest import REDIS_URL, auth
from tests.integration.test_monitoring_api import make_env, upload_work
from tests.integration.test_monitoring_web import Site, copy_of, page, work_image


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    try:
        yield s
    finally:
        s.close()


def receiver(statuses: list[int]) -> Any:
    """A webhook endpoint answering the given statuses in turn (then 200), recording each request."""
    def handle(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        status = statuses.pop(0) if statuses else 200
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handle


def wait_for(pred: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def copy_alert(e: dict[str, Any], site: Site, seed: int) -> str:
    client, (_, key) = e["client"], e["tenant"]
    original = work_image(seed)
    upload_work(client, key, original, "w.png")
    site.add(f"/c{seed}.jpg", copy_of(original), ctype="image/jpeg")
    url = site.add(f"/p{seed}", page("copy", images=[f"/c{seed}.jpg"]))
    resp = client.post("/v1/scans", headers=auth(key), json={"url": url})
    return str(resp.json["alerts"][0])


def test_signed_webhook_retried_then_delivered_and_dead_lettered(tmp_path: Path, site: Site) -> None:
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}")
    try:
        client, (_, key), (_, other) = e["client"], e["tenant"], e["other"]
        hook_url = site.add_raw("/hook", receiver([500, 503]))
        resp = client.post("/v1/webhooks", headers=auth(key), json={"url": hook_url})
        assert resp.status_code == 201 and resp.json["secret"].startswith("whsec_")
        secret, hook_id = resp.json["secret"], resp.json["id"]
        listed = client.get("/v1/webhooks", headers=auth(key)).json["endpoints"]
        assert [w["id"] for w in listed] == [hook_id] and "secret" not in listed[0]  # shown once
        assert client.delete(f"/v1/webhooks/{hook_id}", headers=auth(other)).status_code == 404
        e["s"].start_background()
        alert_id = copy_alert(e, site, 41)
        deliveries = wait_for(lambda: [d for d in client.get(f"/v1/alerts/{alert_id}", headers=auth(key))
                                       .json["deliveries"] if d["status"] == "delivered"])
        d = deliveries[0]
        assert d["attempts"] == 3 and [x["http_status"] for x in d["log"]] == [500, 503, 200]
        posts = [p for p in site.posts if p[0] == "/hook"]
        assert len(posts) == 3 and len({p[1]["webhook-id"] for p in posts}) == 1  # same id on every retry
        payload = Webhook(secret).verify(posts[-1][2], posts[-1][1])
        assert payload["type"] == "alert.created" and payload["data"]["id"] == alert_id
        with pytest.raises(Exception, match="signature"):
            Webhook("whsec_" + "A" * 32).verify(posts[-1][2], posts[-1][1])
        # A receiver that always fails: dead after webhook_max_attempts (3), kept with its log.
        client.delete(f"/v1/webhooks/{hook_id}", headers=auth(key))
        bad = client.post("/v1/webhooks", headers=auth(key), json={"url": site.add_raw("/down", receiver([500] * 10))})
        assert bad.status_code == 201
        alert2 = copy_alert(e, site, 42)
        dead = wait_for(lambda: [d for d in client.get(f"/v1/alerts/{alert2}", headers=auth(key))
                                 .json["deliveries"] if d["status"] == "dead"])
        assert dead[0]["attempts"] == 3 and all(not x["ok"] for x in dead[0]["log"]) and "500" in dead[0]["last_error"]
        time.sleep(0.5)
        assert len([p for p in site.posts if p[0] == "/down"]) == 3  # no attempt after the dead letter
    finally:
        e["s"].close()


def test_webhook_to_refused_address_is_never_posted(tmp_path: Path, site: Site) -> None:
    """Webhook URLs are tenant input: posted through the SSRF guard (127.0.0.2 is outside the allow-list)."""
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", fetch_allow_cidrs=["127.0.0.1/32"])
    try:
        client, (_, key) = e["client"], e["tenant"]
        port = site.server.server_address[1]
        assert client.post("/v1/webhooks", headers=auth(key),
                           json={"url": f"http://127.0.0.2:{port}/hook"}).status_code == 201
        assert client.post("/v1/webhooks", headers=auth(key), json={"url": "gopher://x/"}).status_code == 422
        e["s"].start_background()
        alert_id = copy_alert(e, site, 45)
        dead = wait_for(lambda: [d for d in client.get(f"/v1/alerts/{alert_id}", headers=auth(key))
                                 .json["deliveries"] if d["status"] == "dead"])
        assert "address-refused" in dead[0]["last_error"] and not [p for p in site.posts if p[0] == "/hook"]
    finally:
        e["s"].close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def test_email_alert_through_smtp(tmp_path: Path, site: Site) -> None:
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd's start-up check connects to the port given, so not 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", smtp_url=f"smtp://127.0.0.1:{port}")
        try:
            client, (_, key) = e["client"], e["tenant"]
            resp = client.post("/v1/alert-emails", headers=auth(key), json={"address": "legal@rights.example"})
            assert resp.status_code == 201
            assert client.post("/v1/alert-emails", headers=auth(key), json={"address": "no at"}).status_code == 422
            e["s"].start_background()
            alert_id = copy_alert(e, site, 51)
            wait_for(lambda: inbox.messages)
            env = inbox.messages[0]
            assert env.rcpt_tos == ["legal@rights.example"]
            msg = email.message_from_bytes(env.content, policy=email.policy.default)
            body = msg.get_body().get_content()  # type: ignore[union-attr]
            assert alert_id in body and f"/v1/alerts/{alert_id}/packet.pdf" in body
            assert msg["Subject"].strip().startswith("Possible copy of work dep_")
            d = wait_for(lambda: client.get(f"/v1/alerts/{alert_id}", headers=auth(key)).json["deliveries"])
            assert d[0]["channel"] == "email" and wait_for(
                lambda: client.get(f"/v1/alerts/{alert_id}", headers=auth(key)).json["deliveries"][0]["status"]
                == "delivered")
        finally:
            e["s"].close()
    finally:
        controller.stop()


def test_watch_runs_as_rq_job_on_redis(tmp_path: Path, site: Site) -> None:
    conn = Redis.from_url(REDIS_URL)
    conn.flushdb()
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", redis_url=REDIS_URL)
    try:
        client, (_, key) = e["client"], e["tenant"]
        original = work_image(61)
        upload_work(client, key, original, "w.png")
        site.add("/c.jpg", copy_of(original), ctype="image/jpeg")
        url = site.add("/p", page("copy", images=["/c.jpg"]))
        wid = client.post("/v1/watches", headers=auth(key), json={"url": url, "interval_s": 60}).json["id"]
        m = e["s"].monitoring
        assert m.watches.tick() == (1, 0)
        assert m.watches.tick() == (0, 0)  # claimed for this period: not enqueued twice
        queue = Queue(jobs.MONITORING_QUEUE, connection=conn)
        assert queue.count == 1
        jobs.register(e["config"].home, m)
        try:
            SimpleWorker([queue], connection=conn).work(burst=True)
        finally:
            jobs.unregister(e["config"].home)
        w = client.get(f"/v1/watches/{wid}", headers=auth(key)).json
        assert w["runs"] == 1 and w["last_status"] == "ok"
        assert len(client.get("/v1/alerts", headers=auth(key)).json["alerts"]) == 1
    finally:
        e["s"].close()
        conn.flushdb()
        conn.close()
