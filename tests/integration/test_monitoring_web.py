"""'The internet' for monitoring tests: a real HTTP server on 127.0.0.1, and the fetcher's guards against it.

`Site` serves registered routes (static bodies or handlers that misbehave on purpose: slow, huge, broken
framing). Other monitoring test modules import `Site`, `work_image`, `work_text` and the fixtures here.
"""

from __future__ import annotations

import io
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from depository.monitoring.fetcher import Fetcher, FetchError

Route = tuple[int, str, bytes, list[tuple[str, str]]]
RawHandler = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        site = self.server.site
        path = self.path.split("?", 1)[0]
        site.hits.append(path)
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            site.posts.append((path, dict(self.headers.items()), self.rfile.read(length)))
        raw = site.raw.get(path)
        if raw is not None:
            raw(self, site.closing)
            return
        status, ctype, body, headers = site.routes.get(path, (404, "text/plain", b"not found", []))
        if callable(body):
            status, body = body()  # type: ignore[unreachable]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    do_GET = _serve
    do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (the fetcher enforcing a limit) are expected here, not errors."""


class Site:
    """A tiny web site on 127.0.0.1 with routes set by the test."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.raw: dict[str, RawHandler] = {}
        self.hits: list[str] = []
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.post_status: list[int] = []
        self.closing = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.site = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str, ctype: str = "text/html; charset=utf-8", status: int = 200,
            headers: list[tuple[str, str]] | None = None) -> str:
        self.routes[path] = (status, ctype, body.encode() if isinstance(body, str) else body, headers or [])
        return self.url(path)

    def add_raw(self, path: str, handler: RawHandler) -> str:
        self.raw[path] = handler
        return self.url(path)

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    try:
        yield s
    finally:
        s.close()


def work_image(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "PNG", **save: Any) -> bytes:
    """A distinctive picture: smooth random colour fields (what perceptual hashes can tell apart)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    img = small.resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def copy_of(image: bytes, scale: float = 0.6, quality: int = 70) -> bytes:
    """What a copier's page serves: the work resized and recompressed as JPEG."""
    img = Image.open(io.BytesIO(image)).convert("RGB")
    img = img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


WORDS = ("river stone lantern quiet harbour velvet orchard copper meadow silver thunder whisper garden "
         "marble falcon ember willow canyon saffron glacier violet compass timber lagoon prairie beacon "
         "cobalt juniper tundra mosaic basalt cedar nectar quartz sable thistle azure bramble").split()


def work_text(seed: int, words: int = 400) -> str:
    rng = random.Random(seed)
    lines, line = [], []
    for i in range(words):
        line.append(rng.choice(WORDS) + ("." if i % 13 == 12 else ""))
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)])


def page(title: str, text: str = "", images: list[str] | None = None, og: str | None = None) -> str:
    meta = f'<meta property="og:image" content="{og}">' if og else ""
    imgs = "".join(f'<img src="{u}" alt="">' for u in images or [])
    return (f"<!doctype html><html><head><title>{title}</title>{meta}<script>var x = 1;</script></head>"
            f"<body><h1>{title}</h1><p>{text}</p>{imgs}</body></html>")


# ---- the fetcher against the local site -------------------------------------------------------------

LOCAL = ("127.0.0.0/8",)


def test_fetch_records_exchange(site: Site) -> None:
    url = site.add("/a", "<html>hello</html>", headers=[("X-Test", "1")])
    r = Fetcher(allow_cidrs=LOCAL).get(url)
    assert r.status == 200 and r.content == b"<html>hello</html>" and r.resolved_ip == "127.0.0.1"
    assert ("X-Test", "1") in r.response_headers and r.header("content-type") == "text/html; charset=utf-8"
    assert ("Host", site.base.removeprefix("http://")) in r.request_headers
    assert r.peer_cert_der is None  # plain http


def test_loopback_refused_unless_allow_listed(site: Site) -> None:
    url = site.add("/a", "x")
    with pytest.raises(FetchError) as e:
        Fetcher().get(url)
    assert e.value.reason == "address-refused" and "loopback" in e.value.detail
    assert "/a" not in site.hits  # refused before connecting


def test_name_resolving_to_private_address_is_refused() -> None:
    """'Resolve once': the name's answer is what is checked (a rebinding name pointing inside)."""
    f = Fetcher(resolver=lambda host, port: ["10.1.2.3"])
    with pytest.raises(FetchError) as e:
        f.get("http://innocent.example/")
    assert e.value.reason == "address-refused" and "private" in e.value.detail


def test_redirect_to_metadata_address_is_refused(site: Site) -> None:
    url = site.add("/r", "", status=302, headers=[("Location", "http://169.254.169.254/latest/meta-data/")])
    with pytest.raises(FetchError) as e:
        Fetcher(allow_cidrs=LOCAL).get(url)
    assert e.value.reason == "address-refused" and "link-local" in e.value.detail


def test_redirects_followed_and_bounded(site: Site) -> None:
    site.add("/r1", "", status=301, headers=[("Location", "/r2")])
    site.add("/r2", "", status=302, headers=[("Location", "/end")])
    site.add("/end", "done")
    r = Fetcher(allow_cidrs=LOCAL).get(site.url("/r1"))
    assert r.content == b"done" and [s for _, s in r.redirects] == [301, 302] and r.url.endswith("/end")
    site.add("/loop", "", status=302, headers=[("Location", "/loop")])
    with pytest.raises(FetchError) as e:
        Fetcher(allow_cidrs=LOCAL, max_redirects=3).get(site.url("/loop"))
    assert e.value.reason == "too-many-redirects"


def test_robots_txt_respected(site: Site) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", ctype="text/plain")
    site.add("/private/x", "secret")
    site.add("/public", "ok")
    f = Fetcher(allow_cidrs=LOCAL)
    assert f.get(site.url("/public")).content == b"ok"
    with pytest.raises(FetchError) as e:
        f.get(site.url("/private/x"))
    assert e.value.reason == "robots-disallowed" and "/private/x" not in site.hits


def test_robots_txt_server_error_means_disallow(site: Site) -> None:
    site.add("/robots.txt", "oops", status=503)
    site.add("/page", "x")
    with pytest.raises(FetchError) as e:
        Fetcher(allow_cidrs=LOCAL).get(site.url("/page"))
    assert e.value.reason == "robots-disallowed"


def test_bad_inputs_become_reasons(site: Site) -> None:
    def slow(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        for _ in range(100):  # one byte every 100 ms: each read is quick, the whole is too slow
            if closing.wait(0.1):
                return
            h.wfile.write(b"x")
            h.wfile.flush()

    def garbage(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        h.wfile.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
        h.close_connection = True

    def huge(h: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()  # no Content-Length: the limit must stop the stream itself
        h.close_connection = True
        try:
            for _ in range(100):
                h.wfile.write(b"a" * 65536)
        except OSError:
            pass

    site.add_raw("/slow", slow)
    site.add_raw("/garbage", garbage)
    site.add_raw("/huge", huge)
    site.add("/declared-huge", b"x" * 10, headers=[])
    f = Fetcher(allow_cidrs=LOCAL, timeout_s=1.0, max_bytes=1_000_000)
    cases = {"/slow": "timeout", "/garbage": "malformed-response", "/huge": "too-large", "/missing": "http-status"}
    for path, reason in cases.items():
        started = time.monotonic()
        with pytest.raises(FetchError) as e:
            f.get(site.url(path))
        assert e.value.reason == reason, (path, e.value)
        assert time.monotonic() - started < 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(FetchError) as e:
        f.get(f"http://127.0.0.1:{closed_port}/")
    assert e.value.reason in ("unreachable", "robots-disallowed")


def test_https_captures_server_certificate(tmp_path: Path) -> None:
    """A TLS site on 127.0.0.1 with a test CA: the peer certificate is kept for the capture."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    s = Site()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    s.server.socket = ctx.wrap_socket(s.server.socket, server_side=True)
    try:
        s.add("/robots.txt", "", status=404)
        s.add("/p", "<html>secure</html>")
        url = s.url("/p").replace("http://", "https://")
        r = Fetcher(allow_cidrs=LOCAL, ca_file=tmp_path / "cert.pem").get(url)
        assert r.content == b"<html>secure</html>"
        assert r.peer_cert_der == cert.public_bytes(serialization.Encoding.DER)
        with pytest.raises(FetchError) as e:  # without the test CA the certificate does not verify
            Fetcher(allow_cidrs=LOCAL).get(url)
        assert e.value.reason in ("tls", "robots-disallowed")
    finally:
        s.close()
