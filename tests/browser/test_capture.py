"""Web captures in Debian's Chromium of pages served on 127.0.0.1: static, JavaScript-rendered, lazy images,
a redirect, and a page reaching for an address the guard refuses (an "internal" server on 127.0.0.2 that
must never be hit). The WARC is read back with warcio and checked with `warcio check`; the manifest's
signature and every artefact's digests are verified; the API runs the capture in the background (a thread,
and an rq worker on Redis) and deposits it as one matter.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from depository.capture.browser import CapturePolicy, capture_browser, capture_http
from evidence.capture_manifest import ManifestError, verify_manifest
from tests.conftest import REDIS_URL, auth
from tests.integration.test_monitoring_api import make_env


def png(rgb: tuple[int, int, int]) -> bytes:
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    raw = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Server:
    """A small site on one loopback address; `hits` lists every path requested."""

    def __init__(self, host: str, pages: dict[str, tuple[int, str, bytes, list[tuple[str, str]]]]) -> None:
        self.pages = pages
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                status, ctype, body, headers = outer.pages.get(self.path, (404, "text/plain", b"not found", []))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def sites() -> Iterator[tuple[Server, Server]]:
    internal = Server("127.0.0.2", {"/secret.png": (200, "image/png", png((0, 0, 0)), [])})
    html = f"""<!doctype html><html><head><title>Listing 42</title></head><body>
<h1>Static heading</h1><img id="hero" src="/hero.png" width="40" height="40">
<div id="app"></div>
<script>
  document.getElementById('app').textContent = 'Rendered by JavaScript: price 99.50';
  fetch('{internal.base}/secret.png').catch(() => {{ document.title += ' (blocked)'; }});
</script>
<div style="height: 4000px">spacer</div>
<img id="lazy" loading="lazy" src="/lazy.png" width="40" height="40">
<p>End of page</p></body></html>"""
    public = Server("127.0.0.1", {
        "/old": (302, "text/html", b"moved", [("Location", "/listing")]),
        "/listing": (200, "text/html; charset=utf-8", html.encode(), [("X-Served-By", "test-site")]),
        "/hero.png": (200, "image/png", png((200, 30, 30)), []),
        "/lazy.png": (200, "image/png", png((30, 200, 30)), []),
        "/download": (200, "application/octet-stream", b"\x00" * 1000,
                      [("Content-Disposition", 'attachment; filename="x.bin"')]),
    })
    try:
        yield public, internal
    finally:
        public.close()
        internal.close()


POLICY = CapturePolicy(allow_cidrs=("127.0.0.1/32",), timeout_s=30.0)


def _records(warc: bytes) -> list[Any]:
    out = []
    for rec in ArchiveIterator(io.BytesIO(warc), check_digests="raise"):
        out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"),
                    rec.rec_headers.get_header("WARC-IP-Address"), rec.content_stream().read()))
    return out


def test_browser_capture_renders_guards_and_records(sites: tuple[Server, Server], tmp_path: Path) -> None:
    public, internal = sites
    r = capture_browser(public.base + "/old", POLICY)
    assert r.engine == "chromium"
    assert r.final_url == public.base + "/listing"  # the redirect was followed, hop by hop through the guard
    dom = r.artefacts["dom.html"][1].decode()
    assert "Rendered by JavaScript: price 99.50" in dom
    assert "(blocked)" in r.title  # the page's fetch of the refused address failed in the page itself
    assert "/lazy.png" in public.hits  # scrolling loaded the lazy image
    assert internal.hits == []  # nothing reached the refused address
    refused = [e for e in r.exchanges if e.refused]
    assert [e.url for e in refused] == [internal.base + "/secret.png"]
    assert refused[0].refused.startswith("address-refused")
    ok = {e.url: e for e in r.exchanges if e.status is not None}
    assert ok[public.base + "/old"].status == 302
    assert ok[public.base + "/listing"].resolved_ip == "127.0.0.1"
    assert ("X-Served-By", "test-site") in ok[public.base + "/listing"].response_headers
    shot = r.artefacts["screenshot.png"][1]
    assert shot.startswith(b"\x89PNG") and struct.unpack(">I", shot[20:24])[0] > 4000  # full page height
    assert r.artefacts["page.pdf"][1].startswith(b"%PDF-")
    har = json.loads(r.artefacts["capture.har"][1])
    assert any(e["request"]["url"].endswith("/lazy.png") for e in har["log"]["entries"])
    assert r.environment["browser_version"] and "HeadlessChrome" in r.environment["user_agent"]


def test_http_fallback_capture(sites: tuple[Server, Server]) -> None:
    public, _ = sites
    r = capture_http(public.base + "/old", POLICY)
    assert r.engine == "http" and r.final_url == public.base + "/listing"
    assert b"Static heading" in r.artefacts["page.body"][1]
    assert "/hero.png" not in public.hits  # nothing rendered, nothing else fetched


def _wait(client: Any, key: str, capture_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = dict(client.get(f"/v1/captures/{capture_id}", headers=auth(key)).json)
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _check_capture(e: dict[str, Any], key: str, rec: dict[str, Any], public: Server,
                   extra: set[str] | None = None) -> None:
    client = e["client"]
    assert rec["status"] == "done", rec
    names = {d["artefact"] for d in rec["deposits"]}
    assert names == {"capture.warc.gz", "screenshot.png", "page.pdf", "dom.html", "capture.har", "manifest.json",
                     *(extra or set())}
    blobs = {n: client.get(f"/v1/captures/{rec['id']}/artefacts/{n}", headers=auth(key)).data for n in names}
    manifest = verify_manifest(blobs.pop("manifest.json"), blobs)
    assert manifest["url"] == public.base + "/old" and manifest["final_url"] == public.base + "/listing"
    assert manifest["environment"]["proxy"] == "none" and manifest["environment"]["viewport"]["width"] == 1280
    assert [x["reason"].split(":")[0] for x in manifest["refused"]] == ["address-refused"]
    assert manifest["resolved_addresses"] == {public.base.removeprefix("http://"): ["127.0.0.1"]}
    tampered = dict(blobs, **{"screenshot.png": blobs["screenshot.png"][:-1] + b"\x00"})
    with pytest.raises(ManifestError, match=r"screenshot\.png: sha256"):
        verify_manifest(client.get(f"/v1/captures/{rec['id']}/artefacts/manifest.json", headers=auth(key)).data,
                        tampered)
    # The WARC: every exchange, digests checked while reading, and warcio's own checker.
    recs = _records(blobs["capture.warc.gz"])
    responses = {uri: (ip, body) for t, uri, ip, body in recs if t == "response"}
    assert responses[public.base + "/listing"][0] == "127.0.0.1"
    assert b"Static heading" in responses[public.base + "/listing"][1]
    assert public.base + "/lazy.png" in responses
    assert any(t == "metadata" and b"address-refused" in body for t, _, _, body in recs)
    path = Path(e["config"].home) / "check.warc.gz"
    path.write_bytes(blobs["capture.warc.gz"])
    checked = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(path)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # One matter in the log: every artefact a web-capture deposit, hashes equal to the manifest's.
    matter = client.get(f"/v1/matters/{rec['matter']}", headers=auth(key))
    assert matter.status_code == 200, matter.json
    listed = {a["name"]: a["sha256"] for a in manifest["artefacts"]}
    for d in rec["deposits"]:
        got = client.get(f"/v1/deposits/{d['deposit_id']}", headers=auth(key)).json
        assert got["kind"] == "web-capture" and got["matter"] == rec["matter"]
        if d["artefact"] != "manifest.json":
            assert got["sha256"] == listed[d["artefact"]]


# What a preliminary packet (no witnesses, no TSA token on the checkpoint) fails, and nothing else.
PRELIMINARY_ONLY = {"witness-quorum", "timestamp-token", "time-order", "court-ready"}


def _check_packet(e: dict[str, Any], key: str, rec: dict[str, Any], tmp_path: Path) -> None:
    """The capture's packet: pages, every artefact attached, `verify_packet` all green, pdfsig valid; a
    packet whose attached screenshot is swapped fails the capture-manifest check."""
    from depository.log import integrate_all
    from depository.packets import packet_material
    from evidence.capture_packet import capture_checks
    from evidence.verify import Trust, verify_packet

    client = e["client"]
    url = f"/v1/captures/{rec['id']}/packet.pdf"
    assert client.get(url, headers=auth(key)).status_code == 409  # not in a checkpoint yet
    integrate_all(e["s"].log, 1000)
    assert client.get(url, headers=auth(key)).status_code == 409  # no witnesses here: not court-ready
    resp = client.get(url + "?preliminary=1", headers=auth(key))
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    pdf = tmp_path / "capture-packet.pdf"
    pdf.write_bytes(resp.data)
    home = Path(e["config"].home)
    # No notary runs in this test, so checkpoints carry no token yet: trust the log and the packet signer.
    trust = Trust(log_vkey=e["s"].keys.vkey, packet_ca_pem=packet_material(home).ca_path.read_bytes())
    checks = verify_packet(resp.data, trust=trust)
    failing = {c.name.split("] ")[-1] for c in checks if not c.ok}
    assert failing <= PRELIMINARY_ONLY, failing
    cap = [c for c in checks if c.name == "capture-manifest"]
    assert len(cap) == 1 and cap[0].ok and "artefacts attached" in cap[0].detail
    assert sum(c.name.endswith("original-attachment") for c in checks) == len(rec["deposits"])
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid" in sig and "Signature is Invalid" not in sig
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Web capture" in text and "Capture environment" in text and "Screenshot, part 2" in text
    assert rec["url"] in " ".join(text.split()).replace(" ", "") or rec["url"] in text
    # The check itself: a swapped screenshot among the originals is named.
    blobs = {f"x.original-{d['artefact']}": client.get(f"/v1/captures/{rec['id']}/artefacts/{d['artefact']}",
                                                       headers=auth(key)).data for d in rec["deposits"]}
    assert [ok for _, ok, _ in capture_checks(blobs)] == [True]
    blobs["x.original-screenshot.png"] = png((1, 2, 3))
    [(_, ok, detail)] = capture_checks(blobs)
    assert not ok and "screenshot.png: not attached" in detail


def test_api_capture_in_background_thread(tmp_path: Path, sites: tuple[Server, Server]) -> None:
    """Without Redis: a thread runs it. With a TSA configured (ours, on 127.0.0.1) the clock is measured."""
    from evidence.timestamp import parse_token, verify_token
    from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
    from notary_bridge.tsa_server import create_app as create_tsa_app

    public, _ = sites
    init_tsa_material(tmp_path / "home", "Capture Test TSA")
    tsa = ServerThread(create_tsa_app(load_core(tmp_path / "home"))).start()
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", fetch_allow_cidrs=["127.0.0.1/32"], tsa_urls=[tsa.url])
    try:
        client, (_, key), (_, other_key) = e["client"], e["tenant"], e["other"]
        resp = client.post("/v1/captures", headers=auth(key), json={"url": public.base + "/old", "matter": "case-7"})
        assert resp.status_code == 202, resp.json
        assert resp.json["status"] in ("queued", "running") and resp.headers["Location"].endswith(resp.json["id"])
        rec = _wait(client, key, resp.json["id"])
        assert rec["matter"] == "case-7"
        _check_capture(e, key, rec, public, extra={"clock-start.tsr", "clock-end.tsr"})
        manifest = json.loads(client.get(f"/v1/captures/{rec['id']}/artefacts/manifest.json", headers=auth(key)).data)
        start, end = manifest["environment"]["clock_offset"]
        assert start["moment"] == "start" and end["moment"] == "end" and abs(start["offset_ms"]) < 5000
        token = client.get(f"/v1/captures/{rec['id']}/artefacts/clock-end.tsr", headers=auth(key)).data
        ca = (tmp_path / "home" / "tsa" / "tsa-ca.pem").read_bytes()
        verify_token(token, hashlib.sha256(end["subject"].encode()).digest(), "sha256", [ca])
        assert parse_token(token).gen_time.isoformat() == end["tsa_gen_time"]
        _check_packet(e, key, rec, tmp_path)
        # Another tenant sees nothing; a bad id is a 404, not a 500.
        for path in (f"/v1/captures/{rec['id']}", f"/v1/captures/{rec['id']}/artefacts/manifest.json",
                     "/v1/captures/..%2f..%2fetc", "/v1/captures/cap_" + "0" * 24):
            r = client.get(path, headers=auth(other_key))
            assert r.status_code == 404 and r.mimetype == "application/problem+json", path
        # Bad input: problem+json, nothing queued.
        for body in ({"url": "file:///etc/passwd"}, {"url": "http://u:p@example.com/"}, {"url": 5},
                     {"url": public.base, "matter": "no spaces allowed"}, {"url": public.base, "x": 1}):
            r = client.post("/v1/captures", headers=auth(key), json=body)
            assert r.status_code == 422 and r.mimetype == "application/problem+json", body
        assert client.post("/v1/captures", headers=auth(key), data="{", content_type="application/json"
                           ).status_code == 400
        # A refused first URL: the capture fails with the guard's reason, nothing is deposited.
        r = client.post("/v1/captures", headers=auth(key), json={"url": "http://127.0.0.2:9/"})
        failed = _wait(client, key, r.json["id"])
        assert failed["status"] == "failed" and "refused" in failed["error"] and failed["deposits"] == []
        assert client.post("/v1/captures", json={"url": public.base}).status_code == 401
    finally:
        e["s"].close()
        tsa.stop()


def test_api_capture_runs_in_rq_worker(tmp_path: Path, sites: tuple[Server, Server]) -> None:
    """With Redis the API process only enqueues; a worker on the monitoring queue captures."""
    import redis
    from rq import Queue, SimpleWorker

    from depository.capture import jobs
    from depository.monitoring.jobs import MONITORING_QUEUE

    public, _ = sites
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", fetch_allow_cidrs=["127.0.0.1/32"], redis_url=REDIS_URL)
    try:
        client, (_, key) = e["client"], e["tenant"]
        resp = client.post("/v1/captures", headers=auth(key), json={"url": public.base + "/old"})
        assert resp.status_code == 202
        assert client.get(f"/v1/captures/{resp.json['id']}", headers=auth(key)).json["status"] == "queued"
        assert public.hits == []  # nothing fetched by the API process
        jobs.register(e["config"].home, e["s"])
        SimpleWorker([Queue(MONITORING_QUEUE, connection=conn)], connection=conn).work(burst=True)
        rec = _wait(client, key, resp.json["id"], timeout_s=1)
        assert rec["matter"] == f"capture:{rec['id']}"
        _check_capture(e, key, rec, public)
    finally:
        jobs.register(e["config"].home, None)
        e["s"].close()
        conn.flushdb()


def test_cli_capture_over_a_real_server(tmp_path: Path, sites: tuple[Server, Server]) -> None:
    from tests.procs import Proc, cli_env, free_port, run_cli

    public, _ = sites
    env = cli_env(tmp_path / "home", batch_interval_ms="50", fetch_allow_cidrs="127.0.0.1/32")
    run_cli(["init"], env)
    key = json.loads(run_cli(["tenant", "create", "Law Firm LLP"], env).stdout)["api_key"]
    port = free_port()
    with Proc(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        cenv = {**env, "DEPOSITORY_API_KEY": key, "DEPOSITORY_SERVER": f"http://127.0.0.1:{port}"}
        out = tmp_path / "out"
        rec = json.loads(run_cli(["capture", public.base + "/old", "--matter", "case-9", "--operator", "J. Clerk",
                                  "--wait", "90", "-o", str(out)], cenv).stdout)
        assert rec["status"] == "done" and rec["engine"] == "chromium"
        blobs = {p.name: p.read_bytes() for p in out.iterdir()}
        m = verify_manifest(blobs.pop("manifest.json"), blobs)
        assert m["operator"] == "J. Clerk" and m["matter"] == "case-9" and len(blobs) == 5
        bad = run_cli(["capture", "ftp://example.com/"], cenv, check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        refused = run_cli(["capture", "http://127.0.0.2:9/"], cenv, check=False)
        assert refused.returncode != 0 and "refused" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
