"""Fetching suspect pages and images from the open web, safely (SSRF) and within limits.

A watch URL is chosen by a tenant, so every fetch is a request the depository makes on someone else's
behalf from inside its own network. The guards, and why each exists:

* **Resolve once, connect to that IP.** The host name is resolved here, each address is checked, and the
  socket connects to the checked address (the Host header and TLS SNI still carry the name). Resolving
  again inside the HTTP library would let a DNS answer change between check and use (DNS rebinding).
* **Special addresses refused** -- private, loopback, link-local (cloud metadata at 169.254.169.254),
  shared, multicast, reserved, unspecified, IPv4-mapped forms of those -- unless the resolved address is
  inside `fetch_allow_cidrs` (tests allow 127.0.0.0/8).
* **Every redirect hop is re-checked** (scheme, address, robots.txt); redirects are followed here, never
  by a library, and at most `fetch_max_redirects` of them.
* **robots.txt is respected** (RFC 9309): fetched with the same guards, cached per origin; 4xx means no
  rules, 5xx or unreachable means "disallow all" as the RFC asks.
* **Limits**: one deadline for the whole fetch (a watchdog shuts the socket, so a server dripping one
  byte a second cannot hold a worker), a byte limit on the body, `Accept-Encoding: identity` and a
  bounded decompressor should a server compress anyway (gzip bombs).

Failures raise `FetchError(reason, detail)`; `reason` is a short slug stored with the failed fetch.
The result keeps what a forensic capture needs: the exact request and response headers, status, body,
fetch time, resolved IP and, over https, the server's certificate.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

__all__ = ["FetchError", "FetchResult", "Fetcher", "address_refused", "parse_allow_cidrs"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
ROBOTS_TTL_S = 3600.0
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 §2.5: crawlers must parse at least 500 KiB
READ_CHUNK = 64 * 1024


class FetchError(Exception):
    """A fetch that did not produce a usable response; `reason` is a slug, `detail` says what happened."""

    def __init__(self, reason: str, detail: str, *, resolved_ip: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.resolved_ip = resolved_ip
        self.status = status

    def diagnostics(self) -> str:
        return f"fetch failed ({self.reason}): {self.detail}"


@dataclass
class FetchResult:
    """One HTTP exchange as sent and received (the final hop), plus the redirect hops before it."""

    url: str
    method: str
    status: int
    reason: str
    http_version: str
    request_headers: list[tuple[str, str]]
    response_headers: list[tuple[str, str]]
    body: bytes  # the payload as received on the wire (what the WARC stores)
    content: bytes  # the payload decoded (Content-Encoding undone); what extraction reads
    fetched_at: datetime
    resolved_ip: str
    port: int
    peer_cert_der: bytes | None = None
    redirects: list[tuple[str, int]] = field(default_factory=list)  # (url, status) of earlier hops
    elapsed_s: float = 0.0

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == name), None)

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()


def parse_allow_cidrs(cidrs: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]


def address_refused(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why `ip` may not be fetched from (a short phrase), or None when it may.

    An address inside an allow-listed network is always allowed; otherwise only globally routable
    unicast addresses are. IPv4-mapped and 6to4/Teredo-embedded IPv4 addresses are judged by the IPv4
    address they carry, so `::ffff:127.0.0.1` is loopback.
    """
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            why = address_refused(embedded, allow)
            return None if why is None else f"{why} (embedded in {ip})"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated (RFC 3879)
        return f"site-local address {ip}"
    for attr, why in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                      ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                      ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return f"{why} address {ip}"
    if not ip.is_global:
        return f"non-global address {ip}"
    return None


class _Watchdog:
    """Shuts a socket down at a deadline, so a slow server cannot hold the fetch past it."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()
        self._timer.join()


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) connection to a pre-resolved, pre-checked IP; the URL's host name goes only into Host/SNI."""

    def __init__(self, host: str, port: int, ip: str, timeout: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip
        self._tls = tls
        self.peer_cert_der: bytes | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
            self.peer_cert_der = sock.getpeercert(binary_form=True)
        self.sock = sock


def _decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo gzip/deflate with an output bound (a 10 KB gzip bomb must not become 10 GB in memory)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise FetchError("unsupported-encoding", f"Content-Encoding {enc} was not requested")
    d = zlib.decompressobj(wbits=47 if enc != "deflate" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise FetchError("malformed-response", f"cannot decompress {enc} body: {e}") from e
    if len(out) > limit or d.unconsumed_tail:
        raise FetchError("too-large", f"the decompressed body exceeds {limit} bytes (compression bomb)")
    return out


class Fetcher:
    """Guarded HTTP GET/POST for monitoring and webhooks. Thread-safe (the robots cache has a lock)."""

    def __init__(self, *, allow_cidrs: Sequence[str] = (), timeout_s: float = 10.0,
                 max_bytes: int = 10 * 1024 * 1024, max_redirects: int = 5,
                 user_agent: str = "EvidenceDepositoryMonitor/1.0", ca_file: Path | None = None,
                 resolver: Callable[[str, int], list[str]] | None = None) -> None:
        self.allow = parse_allow_cidrs(allow_cidrs)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._tls = ssl.create_default_context()
        if ca_file is not None:
            self._tls.load_verify_locations(cafile=str(ca_file))
        self._resolve = resolver or _system_resolve
        self._robots: dict[str, tuple[float, RobotFileParser | None]] = {}
        self._robots_lock = threading.Lock()

    # ---- public ------------------------------------------------------------------------------------

    def get(self, url: str, *, max_bytes: int | None = None, check_robots: bool = True,
            accept: str = "*/*", deadline: float | None = None) -> FetchResult:
        """GET `url`, following checked redirects; FetchError unless the final answer is 2xx. `deadline`
        (time.monotonic()) cuts the fetch's own timeout short, e.g. at the end of a whole scan's budget."""
        hops: list[tuple[str, int]] = []
        own = time.monotonic() + self.timeout_s
        deadline = own if deadline is None else min(own, deadline)
        if deadline <= time.monotonic():
            raise FetchError("timeout", f"no time left to fetch {url[:200]}")
        current = url
        while True:
            self._check_url(current)
            parts = urlsplit(current)
            # Refuse a forbidden address before robots.txt is asked for (a clearer reason, no request at all).
            self._pick_address(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
            if check_robots and not self.allowed_by_robots(current, deadline):
                raise FetchError("robots-disallowed", f"robots.txt of {_origin(current)} disallows {current}")
            result = self._exchange("GET", current, None, {"Accept": accept}, deadline,
                                    max_bytes or self.max_bytes)
            if result.status in REDIRECT_STATUSES and result.header("Location"):
                hops.append((current, result.status))
                if len(hops) > self.max_redirects:
                    raise FetchError("too-many-redirects", f"more than {self.max_redirects} redirects from {url}",
                                     resolved_ip=result.resolved_ip, status=result.status)
                current = urljoin(current, result.header("Location") or "")
                continue
            result.redirects = hops
            if not 200 <= result.status < 300:
                raise FetchError("http-status", f"{current} answered {result.status} {result.reason}",
                                 resolved_ip=result.resolved_ip, status=result.status)
            return result

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> FetchResult:
        """POST without following redirects (webhooks): any status is returned, the caller judges it."""
        self._check_url(url)
        return self._exchange("POST", url, body, headers, time.monotonic() + self.timeout_s, 64 * 1024)

    def allowed_by_robots(self, url: str, deadline: float | None = None) -> bool:
        origin = _origin(url)
        now = time.monotonic()
        with self._robots_lock:
            hit = self._robots.get(origin)
        if hit is None or now - hit[0] > ROBOTS_TTL_S:
            hit = (now, self._load_robots(origin, deadline or now + self.timeout_s))
            with self._robots_lock:
                self._robots[origin] = hit
        parser = hit[1]
        if parser is None:  # robots.txt unreachable or 5xx: RFC 9309 §2.3.1.4, assume complete disallow
            return False
        return parser.can_fetch(self.user_agent, url)

    # ---- internals ---------------------------------------------------------------------------------

    def _load_robots(self, origin: str, deadline: float) -> RobotFileParser | None:
        url = origin + "/robots.txt"
        parser = RobotFileParser(url)
        try:
            for _ in range(self.max_redirects + 1):
                self._check_url(url)
                r = self._exchange("GET", url, None, {"Accept": "text/plain"}, deadline, ROBOTS_MAX_BYTES,
                                   truncate=True)
                if r.status in REDIRECT_STATUSES and r.header("Location"):
                    url = urljoin(url, r.header("Location") or "")
                    continue
                break
            else:
                return _allow_all(parser)
        except FetchError:
            return None
        if 400 <= r.status < 500:
            return _allow_all(parser)
        if r.status >= 500 or r.status < 200 or r.status >= 300:
            return None
        parser.parse(r.content.decode("utf-8", "replace").splitlines())
        return parser

    def _check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise FetchError("bad-url", f"cannot parse {url[:200]!r}: {e}") from e
        if not url.isprintable():  # NUL or control characters: no valid URL has them (RFC 3986)
            raise FetchError("bad-url", f"control characters in {url[:200]!r}")
        if parts.scheme not in ("http", "https"):
            raise FetchError("bad-url", f"only http and https URLs are fetched, not {parts.scheme or 'none'}")
        if not parts.hostname:
            raise FetchError("bad-url", f"no host in {url[:200]!r}")
        if parts.username is not None or parts.password is not None:
            raise FetchError("bad-url", "URLs with user names or passwords are not fetched")
        if port == 0:
            raise FetchError("bad-url", "port 0")

    def _pick_address(self, host: str, port: int) -> str:
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            candidates = [str(literal)]
        except ValueError:
            try:
                candidates = self._resolve(host, port)
            except OSError as e:
                raise FetchError("dns", f"cannot resolve {host}: {e}") from e
            except UnicodeError as e:  # a host name IDNA cannot encode is not a host name
                raise FetchError("bad-url", f"invalid host name {host[:100]!r}") from e
        if not candidates:
            raise FetchError("dns", f"{host} has no addresses")
        reasons = []
        for text in candidates:
            why = address_refused(ipaddress.ip_address(text), self.allow)
            if why is None:
                return text
            reasons.append(why)
        # One refused answer is enough to refuse: a host that resolves to a mix is an attack or a mistake.
        raise FetchError("address-refused", f"{host} resolves to a refused address: {'; '.join(reasons)}")

    def _exchange(self, method: str, url: str, body: bytes | None, extra_headers: dict[str, str],
                  deadline: float, max_bytes: int, *, truncate: bool = False) -> FetchResult:
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        ip = self._pick_address(host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"no time left for {url}", resolved_ip=ip)
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        host_header = host if ":" not in host else f"[{host}]"
        if parts.port:
            host_header += f":{parts.port}"
        headers = [("Host", host_header), ("User-Agent", self.user_agent), ("Accept-Encoding", "identity")]
        headers += list(extra_headers.items())
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        conn = _PinnedConnection(host, port, ip, min(remaining, self.timeout_s), self._tls if tls else None)
        started = time.monotonic()
        fetched_at = datetime.now(UTC)
        watchdog: _Watchdog | None = None
        try:
            try:
                conn.connect()
            except ssl.SSLError as e:
                raise FetchError("tls", f"TLS handshake with {host} failed: {e}", resolved_ip=ip) from e
            except TimeoutError as e:
                raise FetchError("timeout", f"connecting to {ip}:{port} timed out", resolved_ip=ip) from e
            except OSError as e:
                raise FetchError("unreachable", f"cannot connect to {ip}:{port}: {e}", resolved_ip=ip) from e
            assert conn.sock is not None
            watchdog = _Watchdog(conn.sock, deadline - time.monotonic())
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            declared = resp.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes and not truncate:
                raise FetchError("too-large", f"{url} declares {declared} bytes, limit {max_bytes}",
                                 resolved_ip=ip, status=resp.status)
            chunks, size = [], 0
            while True:
                chunk = resp.read(READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    if truncate:
                        chunks.append(chunk[: max_bytes - (size - len(chunk))])
                        break
                    raise FetchError("too-large", f"{url} sent more than {max_bytes} bytes",
                                     resolved_ip=ip, status=resp.status)
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"{url} did not finish within {self.timeout_s:g} s",
                                     resolved_ip=ip, status=resp.status)
            raw = b"".join(chunks)
        except FetchError:
            raise
        except (http.client.HTTPException, ValueError) as e:
            if watchdog is not None and watchdog.fired:
                raise FetchError("timeout", f"{url} did not finish within {self.timeout_s:g} s",
                                 resolved_ip=ip) from e
            raise FetchError("malformed-response", f"{url}: {type(e).__name__}: {e}", resolved_ip=ip) from e
        except TimeoutError as e:
            raise FetchError("timeout", f"{url} did not answer within {self.timeout_s:g} s", resolved_ip=ip) from e
        except OSError as e:
            if watchdog is not None and watchdog.fired:
                raise FetchError("timeout", f"{url} did not finish within {self.timeout_s:g} s",
                                 resolved_ip=ip) from e
            raise FetchError("unreachable", f"{url}: {e}", resolved_ip=ip) from e
        finally:
            if watchdog is not None:
                watchdog.cancel()
            conn.close()
        if watchdog is not None and watchdog.fired:
            raise FetchError("timeout", f"{url} did not finish within {self.timeout_s:g} s", resolved_ip=ip)
        content = _decode_body(raw, resp.getheader("Content-Encoding"), max_bytes)
        return FetchResult(
            url=url, method=method, status=resp.status, reason=resp.reason or "",
            http_version="HTTP/1.1" if resp.version == 11 else "HTTP/1.0", request_headers=headers,
            response_headers=list(resp.getheaders()), body=raw, content=content, fetched_at=fetched_at,
            resolved_ip=ip, port=port, peer_cert_der=conn.peer_cert_der,
            elapsed_s=time.monotonic() - started)


def _allow_all(parser: RobotFileParser) -> RobotFileParser:
    parser.parse([])  # no rules: everything allowed (RFC 9309 §2.3.1.3 for a 4xx robots.txt)
    return parser


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
