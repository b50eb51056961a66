"""Monitoring over HTTP, end to end: copyright upload -> fingerprints -> scan of a copy served on 127.0.0.1
-> WARC capture deposited -> alert -> status workflow -> infringement packet; bad inputs; tenant isolation.
"""

from __future__ import annotations

import io
import json
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

from depository.log import integrate_all
from depository.monitoring.models import FetchRow, FingerprintRow
from tests.conftest import auth
from tests.integration.test_monitoring_web import Site, copy_of, page, work_image, work_text

COPYRIGHT = {"title": "Harbour at dusk", "author": "A. Painter", "work_type": "image"}


def make_env(tmp_path: Path, db_url: str, **overrides: Any) -> dict[str, Any]:
    from depository.app import create_app
    from depository.config import load_config
    from depository.wiring import build_services, init_home

    settings: dict[str, Any] = dict(
        home=tmp_path / "home", database_url=db_url, batch_interval_ms=20, log_origin="test.example/log",
        fetch_allow_cidrs=["127.0.0.0/8"], fetch_timeout_s=2.0, watch_min_interval_s=1, monitor_tick_ms=100,
        webhook_retry_base_s=0.05, webhook_max_attempts=3, run_integrator=False,
        scan_rate_per_minute=6000)  # these tests scan in quick succession; test_scan_limits tests the limit
    settings.update(overrides)
    config = load_config(env={}, **settings)
    init_home(config)
    services = build_services(config)
    app = create_app(config, services)
    app.config["TESTING"] = True
    return {"config": config, "s": services, "client": app.test_client(),
            "tenant": services.tenants.create("Rights Holder Ltd"), "other": services.tenants.create("Other Co")}


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'depository.db'}")
    try:
        yield e
    finally:
        e["s"].close()


def upload_work(client: Any, key: str, data: bytes, filename: str, meta: dict[str, Any] | None = None) -> str:
    resp = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                       data={"kind": "copyright", "metadata": json.dumps(meta or COPYRIGHT),
                             "file": (io.BytesIO(data), filename)})
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def scan(client: Any, key: str, url: str) -> dict[str, Any]:
    resp = client.post("/v1/scans", headers=auth(key), json={"url": url})
    assert resp.status_code == 200, resp.json
    return dict(resp.json)


def test_upload_fingerprints_scan_captures_and_alerts(tmp_path: Path, db_url: str, site: Site) -> None:
    e = make_env(tmp_path, db_url)
    try:
        client, (_, key) = e["client"], e["tenant"]
        original = work_image(1)
        work_id = upload_work(client, key, original, "harbour.png")
        with e["s"].engine.connect() as conn:
            kinds = conn.execute(select(FingerprintRow.kind)
                                 .where(FingerprintRow.deposit_id == work_id)).scalars().all()
        assert kinds == ["image"]
        site.add("/img/copy.jpg", copy_of(original), ctype="image/jpeg")
        site.add("/img/other.png", work_image(99), ctype="image/png")
        url = site.add("/post/1", page("My holiday", "some words", ["/img/other.png", "/img/copy.jpg"]))
        report = scan(client, key, url)
        assert report["ok"] and [m["work_deposit"] for m in report["matches"]] == [work_id]
        assert report["matches"][0]["matched_url"] == site.url("/img/copy.jpg") and report["matches"][0]["score"] > 0.82
        assert len(report["alerts"]) == 1
        alert = client.get(f"/v1/alerts/{report['alerts'][0]}", headers=auth(key)).json
        assert alert["status"] == "new" and alert["work_deposit"] == work_id and alert["page_url"] == url
        assert alert["method"] == "image:phash+dhash" and alert["score"] > 0.82
        capture = client.get(f"/v1/deposits/{alert['capture_deposit']}", headers=auth(key)).json
        assert capture["kind"] == "web-capture" and capture["metadata"]["url"] == url
        assert capture["metadata"]["work_deposit"] == work_id and capture["metadata"]["captured_at"].endswith("Z")
        warc = client.get(f"/v1/alerts/{alert['id']}/capture.warc.gz", headers=auth(key))
        assert warc.status_code == 200
        import hashlib

        assert hashlib.sha256(warc.data).hexdigest() == capture["sha256"]
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"),
                    r.rec_headers.get_header("WARC-IP-Address"), r.content_stream().read())
                   for r in ArchiveIterator(io.BytesIO(warc.data))]
        responses = {uri: (ip, body) for kind, uri, ip, body in records if kind == "response"}
        assert responses[url][0] == "127.0.0.1" and b"My holiday" in responses[url][1]
        assert responses[site.url("/img/copy.jpg")][1] == copy_of(original)
        assert site.url("/img/other.png") not in responses  # only matched images are captured
        assert sum(1 for kind, *_ in records if kind == "request") == 2
        meta = json.loads(next(body for kind, _, _, body in records if kind == "metadata"))
        assert meta["resolved_ip"] == "127.0.0.1" and meta["matches"][0]["work_deposit"] == work_id
        # The same copy seen again: no second alert, no second capture.
        again = scan(client, key, url)
        assert again["matches"] and again["alerts"] == []
        assert len(client.get("/v1/alerts", headers=auth(key)).json["alerts"]) == 1
        # The other tenant's scan of the same page concerns only its own (no) works.
        assert scan(client, e["other"][1], url)["matches"] == []
    finally:
        e["s"].close()


def test_text_work_found_in_page_and_index_rebuilt_from_db(env: dict[str, Any], site: Site) -> None:
    client, (tid, key) = env["client"], env["tenant"]
    text = work_text(7)
    work_id = upload_work(client, key, text.encode(), "poem.txt", {**COPYRIGHT, "work_type": "text"})
    reflowed = " ".join(text.split()).replace(".", ",")
    url = site.add("/blog", page("Reposted", reflowed))
    report = scan(client, key, url)
    assert [m["work_deposit"] for m in report["matches"]] == [work_id]
    assert report["matches"][0]["method"] == "text:minhash-jaccard"
    # A fresh Monitoring (another process, a restart) rebuilds its per-tenant index from the table.
    from depository.monitoring.service import Monitoring

    fresh = Monitoring(env["s"])
    assert fresh.has_works(tid) and not fresh.has_works(env["other"][0])
    assert fresh.scan_url(tid, url, capture=False).matches[0]["work_deposit"] == work_id


def test_scan_uploaded_file(env: dict[str, Any]) -> None:
    client, (_, key) = env["client"], env["tenant"]
    original = work_image(3)
    work_id = upload_work(client, key, original, "w.png")
    resp = client.post("/v1/scans", headers=auth(key), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(copy_of(original, 1.4, 50)), "suspect.jpg")})
    assert resp.status_code == 200 and [m["work_deposit"] for m in resp.json["matches"]] == [work_id]
    other = client.post("/v1/scans", headers=auth(env["other"][1]), content_type="multipart/form-data",
                        data={"file": (io.BytesIO(original), "suspect.png")})
    assert other.json["matches"] == []


def _bomb_png() -> bytes:
    """A valid PNG header claiming 100,000 x 100,000 pixels with a tiny compressed body."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 100_000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_bad_inputs_are_failed_fetches_with_reasons_and_no_alert(env: dict[str, Any], site: Site) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler

    client, (tid, key) = env["client"], env["tenant"]
    upload_work(client, key, work_image(5), "w.png")

    def slow(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        closing.wait(5)

    def garbage(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        h.wfile.write(b"HTTP/9 what\r\n\r\n")
        h.close_connection = True

    site.add("/fake.jpg", "<html>not an image</html>", ctype="image/jpeg")
    site.add("/bomb.png", _bomb_png(), ctype="image/png")
    site.add("/huge.png", b"\x89PNG" + b"\0" * 3_000_000, ctype="image/png")
    site.add_raw("/slow", slow)
    site.add_raw("/garbage", garbage)
    site.add("/bad.html", b"\xff\xfe<<<html \x00\x01 <p><img src='/fake.jpg'><img src=/bomb.png><img src='/huge.png'>"
                          b"<img src='/slow'><p unclosed <img src=", ctype="text/html")
    env["s"].monitoring.fetcher.max_bytes = 1_000_000
    report = scan(client, key, site.url("/bad.html"))
    reasons = {f["url"].rsplit("/", 1)[-1]: f["reason"] for f in report["fetches"]}
    # The page itself came back, but nothing on it could be compared: a failed check, with the reason.
    assert reasons == {"bad.html": "no-content", "fake.jpg": "not-an-image", "bomb.png": "decompression-bomb",
                       "huge.png": "too-large", "slow": "timeout"}, report["fetches"]
    assert not report["ok"] and report["matches"] == [] and report["alerts"] == []
    for path, reason in (("/slow", "timeout"), ("/garbage", "malformed-response"), ("/nothing", "http-status")):
        r = scan(client, key, site.url(path))
        assert not r["ok"] and r["reason"] == reason and r["alerts"] == []
    r = scan(client, key, "http://127.0.0.1:9/")  # discard port: nothing listens
    assert not r["ok"] and r["reason"] in ("unreachable", "robots-disallowed")
    r = scan(client, key, site.add("/empty", "<html><body>hi</body></html>"))
    assert not r["ok"] and r["reason"] == "no-content"
    assert client.post("/v1/scans", headers=auth(key), json={"url": "file:///etc/passwd"}).status_code == 422
    r = env["s"].monitoring.scan_url(tid, "http://10.0.0.1/")
    assert r.reason == "address-refused"
    with env["s"].engine.connect() as conn:
        failed = conn.execute(select(FetchRow.reason).where(FetchRow.ok.is_(False))).scalars().all()
    assert {"not-an-image", "decompression-bomb", "too-large", "timeout", "malformed-response"} <= set(failed)
    assert client.get("/v1/alerts", headers=auth(key)).json["alerts"] == []


def _alert(env: dict[str, Any], site: Site) -> dict[str, Any]:
    client, (_, key) = env["client"], env["tenant"]
    original = work_image(11)
    upload_work(client, key, original, "w.png")
    site.add("/c.jpg", copy_of(original), ctype="image/jpeg")
    report = scan(client, key, site.add("/p", page("copy", images=["/c.jpg"])))
    return dict(client.get(f"/v1/alerts/{report['alerts'][0]}", headers=auth(key)).json)


def test_status_workflow_and_isolation(env: dict[str, Any], site: Site) -> None:
    client, (_, key), (_, other) = env["client"], env["tenant"], env["other"]
    alert = _alert(env, site)
    aid = alert["id"]

    def move(status: str, k: str = key) -> Any:
        return client.post(f"/v1/alerts/{aid}/status", headers=auth(k), json={"status": status, "note": "checked"})

    bad = move("resolved")
    assert bad.status_code == 409 and bad.mimetype == "application/problem+json"
    assert bad.json["current"] == "new" and bad.json["wanted"] == "resolved"
    assert move("nonsense").status_code == 422
    assert move("confirmed", other).status_code == 404
    for status in ("confirmed", "notice-sent", "resolved"):
        resp = move(status)
        assert resp.status_code == 200 and resp.json["status"] == status
    assert [h["status"] for h in client.get(f"/v1/alerts/{aid}", headers=auth(key)).json["history"]] == [
        "new", "confirmed", "notice-sent", "resolved"]
    assert move("confirmed").status_code == 409
    assert client.get("/v1/alerts?status=resolved", headers=auth(key)).json["alerts"][0]["id"] == aid
    for path in (f"/v1/alerts/{aid}", f"/v1/alerts/{aid}/packet.pdf", f"/v1/alerts/{aid}/capture.warc.gz"):
        assert client.get(path, headers=auth(other)).status_code == 404
    assert client.get("/v1/alerts", headers=auth(other)).json["alerts"] == []
    assert client.get(f"/v1/deposits/{alert['capture_deposit']}", headers=auth(other)).status_code == 404


def test_watches_crud_isolation_and_in_process_schedule(env: dict[str, Any], site: Site) -> None:
    import time

    client, (_, key), (_, other) = env["client"], env["tenant"], env["other"]
    original = work_image(21)
    upload_work(client, key, original, "w.png")
    site.add("/c.jpg", copy_of(original), ctype="image/jpeg")
    url = site.add("/p", page("copy", images=["/c.jpg"]))
    assert client.post("/v1/watches", headers=auth(key), json={"url": url, "interval_s": 0}).status_code == 422
    assert client.post("/v1/watches", headers=auth(key), json={"url": "ftp://x/", "interval_s": 5}).status_code == 422
    resp = client.post("/v1/watches", headers=auth(key), json={"url": url, "interval_s": 1})
    assert resp.status_code == 201
    wid = resp.json["id"]
    assert client.get(f"/v1/watches/{wid}", headers=auth(other)).status_code == 404
    assert client.delete(f"/v1/watches/{wid}", headers=auth(other)).status_code == 404
    env["s"].start_background()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        w = client.get(f"/v1/watches/{wid}", headers=auth(key)).json
        if w["runs"] >= 2:
            break
        time.sleep(0.1)
    assert w["runs"] >= 2 and w["last_status"] == "ok" and w["recent_fetches"][0]["ok"]
    alerts = client.get("/v1/alerts", headers=auth(key)).json["alerts"]
    assert len(alerts) == 1 and alerts[0]["watch_id"] == wid
    assert [x["id"] for x in client.get("/v1/watches", headers=auth(key)).json["watches"]] == [wid]
    assert client.delete(f"/v1/watches/{wid}", headers=auth(key)).status_code == 204
    assert client.get(f"/v1/watches/{wid}", headers=auth(key)).status_code == 404


def test_feed_watch_checks_items(env: dict[str, Any], site: Site) -> None:
    client, (tid, key) = env["client"], env["tenant"]
    original = work_image(31)
    work_id = upload_work(client, key, original, "w.png")
    site.add("/c.jpg", copy_of(original, 0.8, 60), ctype="image/jpeg")
    site.add("/items/1", page("first", images=["/c.jpg"]))
    site.add("/items/2", page("second", og="/nothing.png"))
    feed = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f'<item><link>{site.url("/items/1")}</link></item><item><link>{site.url("/items/2")}</link></item>'
            f"</channel></rss>")
    url = site.add("/feed.xml", feed, ctype="application/rss+xml")
    report = env["s"].monitoring.scan_url(tid, url)
    assert report.fetches[0]["role"] == "feed" and report.ok
    assert [m["page_url"] for m in report.matches] == [site.url("/items/1")]
    assert report.matches[0]["work_deposit"] == work_id and len(report.alerts) == 1


def test_infringement_packet(env: dict[str, Any], site: Site, tmp_path: Path) -> None:
    client, (_, key) = env["client"], env["tenant"]
    alert = _alert(env, site)
    resp = client.get(f"/v1/alerts/{alert['id']}/packet.pdf", headers=auth(key))
    assert resp.status_code == 409  # not in a checkpoint yet
    integrate_all(env["s"].log, 1000)
    resp = client.get(f"/v1/alerts/{alert['id']}/packet.pdf", headers=auth(key))
    assert resp.status_code == 409 and resp.json["type"].endswith("/not-court-ready")  # no notary here
    resp = client.get(f"/v1/alerts/{alert['id']}/packet.pdf?preliminary=1", headers=auth(key))
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    pdf = tmp_path / "packet.pdf"
    pdf.write_bytes(resp.data)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Infringement evidence packet" in text and alert["work_deposit"] in text
    flat = " ".join(text.split())
    assert alert["capture_deposit"] in text and " s before the copy was captured at " in flat
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert f"{alert['work_deposit']}.proof.json" in listing and f"{alert['capture_deposit']}.proof.json" in listing
    assert ".warc.gz" in listing
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in sig
