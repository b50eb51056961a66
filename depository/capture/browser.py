"""Render a web page in headless Chromium (Playwright) as a person would see it, every request guarded.

Why the browser never touches the network itself: every request it makes (document, script, image, XHR,
redirect hop) is intercepted (`context.route`) and answered by the project's SSRF guard
(`depository.monitoring.fetcher.Fetcher`: resolve once, refuse special addresses unless allow-listed,
connect to the checked address). The guard's answer is handed back with `route.fulfill`, so what the
browser rendered is byte for byte what the WARC holds, and each response carries the address it came
from. Chromium is also started with a host resolver that resolves nothing, so traffic Playwright cannot
intercept (WebSocket, prefetch) fails instead of escaping the guard. A fresh context (no profile,
cookies, cache, service workers, downloads) means nothing of the operator's browsing reaches the page.

Budgets: one deadline for the whole capture, a byte budget over all responses, a request count; a
request beyond them is refused and recorded like a refused address.

When Playwright or Chromium is not installed, `capture_http` fetches the page alone over the guard (no
screenshot, PDF or rendered DOM): the manifest says so (`engine: http`).
"""

from __future__ import annotations

import os
import platform
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from depository.capture.warc import Exchange
from depository.monitoring.fetcher import REDIRECT_STATUSES, Fetcher, FetchError, FetchResult
from evidence.loops import outside_event_loop

__all__ = ["BrowserUnavailable", "CapturePolicy", "CaptureResult", "browser_available", "capture_browser",
           "capture_http", "chromium_executable"]

REFUSING_REASONS = ("address-refused", "bad-url", "budget")
# Not forwarded from the browser's request: the guard sets these itself (Host from the URL, identity
# encoding so stored bytes are wire bytes), and a fresh context has no cookies to send anyway.
_SKIP_REQUEST_HEADERS = {"host", "accept-encoding", "user-agent", "cookie", "connection", "content-length"}
_SKIP_FULFIL_HEADERS = {"transfer-encoding", "content-length", "connection", "keep-alive"}
SCROLL_STEP_WAIT_MS = 100


class BrowserUnavailable(Exception):
    """Playwright or Chromium is not installed here (the caller falls back to the HTTP capture)."""


@dataclass(frozen=True)
class CapturePolicy:
    """What a capture may do; recorded in the manifest as the fetch policy."""

    allow_cidrs: tuple[str, ...] = ()
    timeout_s: float = 30.0
    max_total_bytes: int = 50 * 1024 * 1024
    max_resource_bytes: int = 10 * 1024 * 1024
    max_requests: int = 500
    viewport_width: int = 1280
    viewport_height: int = 800
    max_scroll_steps: int = 40
    ca_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ssrf_guard": "every request resolved once, special addresses refused unless allow-listed",
                "allow_cidrs": list(self.allow_cidrs), "timeout_s": self.timeout_s,
                "max_total_bytes": self.max_total_bytes, "max_resource_bytes": self.max_resource_bytes,
                "max_requests": self.max_requests, "downloads": "blocked", "cookies": "none (fresh context)",
                "service_workers": "blocked", "robots_txt": "not consulted (a capture a person asked for)"}


@dataclass
class CaptureResult:
    url: str
    final_url: str
    engine: str  # "chromium" or "http"
    started_at: datetime
    finished_at: datetime
    exchanges: list[Exchange]
    artefacts: dict[str, tuple[str, bytes]]  # name -> (content type, bytes), the WARC added by the caller
    environment: dict[str, Any]
    title: str = ""
    status: int | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.refused is not None]

    def tls_certificates_pem(self) -> bytes:
        seen: dict[bytes, None] = {}
        for e in self.exchanges:
            if e.peer_cert_der:
                seen.setdefault(e.peer_cert_der, None)
        return "".join(ssl.DER_cert_to_PEM_cert(d) for d in seen).encode()


class _Guard(Fetcher):
    """The fetcher, one hop at a time (the browser follows redirects itself, each hop routed again)."""

    def exchange(self, method: str, url: str, body: bytes | None, headers: dict[str, str], deadline: float,
                 max_bytes: int) -> FetchResult:
        self._check_url(url)
        return self._exchange(method, url, body, headers, deadline, max_bytes)


def chromium_executable() -> str | None:
    exe = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE") or shutil.which("chromium") or None
    return exe if exe and Path(exe).is_file() else None


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return chromium_executable() is not None


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


class _Router:
    """Answers the browser's requests through the guard, within the budgets, recording each exchange."""

    def __init__(self, policy: CapturePolicy, user_agent: str, deadline: float) -> None:
        self.policy = policy
        self.deadline = deadline
        self.guard = _Guard(allow_cidrs=policy.allow_cidrs, timeout_s=policy.timeout_s,
                            max_bytes=policy.max_resource_bytes, user_agent=user_agent, ca_file=policy.ca_file)
        self.exchanges: list[Exchange] = []
        self.total_bytes = 0
        self.lock = threading.Lock()
        self.prefetched: dict[str, FetchResult] = {}

    def handle(self, route: Any, request: Any) -> None:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST_HEADERS}
        cached = self.prefetched.pop(request.url, None) if request.is_navigation_request() else None
        if cached is not None:  # the top document, already fetched (and its redirects followed) by `prefetch`
            self._fulfil(route, cached)
            return
        r = self.fetch(request.method, request.url, request.post_data_buffer, headers, request.resource_type,
                       [(k, v) for k, v in request.headers.items() if k.lower() != "cookie"])
        if isinstance(r, FetchError):
            route.abort("blockedbyclient" if r.reason in REFUSING_REASONS else "failed")
            return
        self._fulfil(route, r)

    def prefetch(self, url: str) -> str:
        """Fetch the top URL, following its redirects here; returns the final URL for the browser to open.

        Why: Chromium does not route the follow-up of a redirect that `route.fulfill` answered, so hops are
        followed by the guard (each checked and recorded) and the browser opens the last one."""
        r = self.fetch("GET", url, None, {}, "document", [])
        if isinstance(r, FetchError):
            raise r
        self.prefetched[r.url] = r
        return r.url

    def fetch(self, method: str, url: str, body: bytes | None, headers: dict[str, str], resource_type: str,
              browser_headers: list[tuple[str, str]]) -> FetchResult | FetchError:
        """One request and its redirects through the guard, within the budgets; every hop recorded."""
        for _ in range(self.guard.max_redirects + 1):
            ex = Exchange(url=url, method=method, started_at=datetime.now(UTC), request_headers=browser_headers,
                          request_body=body or b"", resource_type=resource_type)
            with self.lock:
                self.exchanges.append(ex)
                budget = self._over_budget()
                remaining = self.policy.max_total_bytes - self.total_bytes
            if budget:
                ex.refused = f"budget: {budget}"
                return FetchError("budget", budget)
            try:
                r = self.guard.exchange(method, url, body, headers, self.deadline,
                                        max(1, min(self.policy.max_resource_bytes, remaining)))
            except FetchError as e:
                ex.refused = f"{e.reason}: {e.detail}"
                ex.resolved_ip = e.resolved_ip
                return e
            ex.request_headers = list(r.request_headers)
            ex.status, ex.reason, ex.http_version = r.status, r.reason, r.http_version
            ex.response_headers, ex.body = list(r.response_headers), r.body
            ex.resolved_ip, ex.port, ex.elapsed_ms = r.resolved_ip, r.port, r.elapsed_s * 1000
            ex.peer_cert_der = r.peer_cert_der
            with self.lock:
                self.total_bytes += len(r.body)
            location = r.header("Location")
            if r.status not in REDIRECT_STATUSES or not location:
                return r
            url = urljoin(url, location)
            if r.status not in (307, 308):
                method, body = "GET", None
        return FetchError("too-many-redirects", f"more than {self.guard.max_redirects} redirects")

    @staticmethod
    def _fulfil(route: Any, r: FetchResult) -> None:
        decoded = r.content is not r.body and r.content != r.body
        out_headers = {k: v for k, v in r.response_headers
                       if k.lower() not in _SKIP_FULFIL_HEADERS and not (decoded and k.lower() == "content-encoding")}
        route.fulfill(status=r.status, headers=out_headers, body=r.content)

    def _over_budget(self) -> str | None:
        if time.monotonic() >= self.deadline:
            return f"the capture's {self.policy.timeout_s:g} s are spent"
        if len(self.exchanges) > self.policy.max_requests:
            return f"more than {self.policy.max_requests} requests"
        if self.total_bytes >= self.policy.max_total_bytes:
            return f"{self.policy.max_total_bytes} bytes received"
        return None


_SCROLL_JS = """() => { window.scrollBy(0, Math.max(200, window.innerHeight));
  const el = document.scrollingElement || document.documentElement;
  return window.scrollY + window.innerHeight >= el.scrollHeight - 2; }"""


def capture_browser(url: str, policy: CapturePolicy, *, executable: str | None = None) -> CaptureResult:
    """Render `url` in a fresh headless Chromium context; BrowserUnavailable if it cannot be started.

    Playwright's sync API refuses to run on a thread with a running event loop (an rq SimpleWorker inside
    a process that already drives Playwright, say): there it runs on a worker thread of its own."""
    return outside_event_loop(_capture_browser, url, policy, executable=executable)


def _capture_browser(url: str, policy: CapturePolicy, *, executable: str | None = None) -> CaptureResult:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise BrowserUnavailable("playwright is not installed (pip install 'depository[capture]')") from e
    exe = executable or chromium_executable()
    if exe is None:
        raise BrowserUnavailable("no Chromium found (set PLAYWRIGHT_CHROMIUM_EXECUTABLE)")
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    deadline = t0 + policy.timeout_s
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="capture-") as tmp:
        har_path = Path(tmp) / "capture.har"
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(
                    executable_path=exe, headless=True,
                    args=["--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--disable-sync",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-default-apps", "--disable-extensions"])
            except PlaywrightError as e:
                raise BrowserUnavailable(f"Chromium did not start: {str(e).splitlines()[0]}") from e
            try:
                context = browser.new_context(
                    viewport={"width": policy.viewport_width, "height": policy.viewport_height},
                    accept_downloads=False, service_workers="block", locale="en-US", timezone_id="UTC",
                    record_har_path=str(har_path), record_har_content="embed")
                user_agent = str(context.new_page().evaluate("navigator.userAgent"))
                router = _Router(policy, user_agent, deadline)
                context.route("**/*", router.handle)
                page = context.pages[0]
                downloads: list[str] = []

                def _refuse_download(d: Any) -> None:
                    downloads.append(d.url)
                    d.cancel()

                page.on("download", _refuse_download)

                def left_ms() -> float:
                    return max(1.0, (deadline - time.monotonic()) * 1000)

                response = page.goto(router.prefetch(url), wait_until="load", timeout=left_ms())
                # Scroll straight after load: lazy content starts loading while the first requests finish,
                # and one wait for network idle (500 ms without requests) afterwards covers both.
                for _ in range(policy.max_scroll_steps):
                    if time.monotonic() >= deadline or page.evaluate(_SCROLL_JS):
                        break
                    page.wait_for_timeout(SCROLL_STEP_WAIT_MS)
                try:
                    page.wait_for_load_state("networkidle", timeout=min(left_ms(), 10_000))
                except PlaywrightError:
                    notes.append("the network did not go idle after scrolling")
                page.evaluate("() => window.scrollTo(0, 0)")
                loaded_ms = (time.monotonic() - t0) * 1000
                screenshot = page.screenshot(full_page=True, type="png", timeout=left_ms())
                dom = page.content().encode("utf-8")
                page.emulate_media(media="print")
                pdf = page.pdf(format="A4", print_background=True)
                title = page.title()
                final_url = page.url
                nav = page.evaluate("() => JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')))")
                version = browser.version
                context.close()  # writes the HAR
            finally:
                browser.close()
        har = har_path.read_bytes()
    finished_at = datetime.now(UTC)
    for d in downloads:
        notes.append(f"download blocked: {d}")
    env = environment(engine="chromium", browser_version=version, user_agent=user_agent, policy=policy,
                      executable=exe)
    return CaptureResult(
        url=url, final_url=final_url, engine="chromium", started_at=started_at, finished_at=finished_at,
        exchanges=router.exchanges, title=title, status=response.status if response is not None else None,
        artefacts={"screenshot.png": ("image/png", screenshot), "page.pdf": ("application/pdf", pdf),
                   "dom.html": ("text/html; charset=utf-8", dom), "capture.har": ("application/json", har)},
        environment=env, notes=notes,
        timing={"total_ms": round((finished_at - started_at).total_seconds() * 1000, 1),
                "loaded_and_scrolled_ms": round(loaded_ms, 1), "navigation": nav[0] if nav else None})


def capture_http(url: str, policy: CapturePolicy, *, user_agent: str = "EvidenceDepositoryCapture/1.0"
                 ) -> CaptureResult:
    """The fallback: the page alone over the guard (redirects followed and checked), no rendering."""
    started_at = datetime.now(UTC)
    guard = Fetcher(allow_cidrs=policy.allow_cidrs, timeout_s=policy.timeout_s,
                    max_bytes=policy.max_resource_bytes, user_agent=user_agent, ca_file=policy.ca_file)
    r = guard.get(url, check_robots=False)
    ex = Exchange(url=r.url, method=r.method, started_at=r.fetched_at, request_headers=list(r.request_headers),
                  status=r.status, reason=r.reason, http_version=r.http_version,
                  response_headers=list(r.response_headers), body=r.body, resolved_ip=r.resolved_ip, port=r.port,
                  elapsed_ms=r.elapsed_s * 1000, resource_type="document", peer_cert_der=r.peer_cert_der)
    finished_at = datetime.now(UTC)
    return CaptureResult(
        url=url, final_url=r.url, engine="http", started_at=started_at, finished_at=finished_at, exchanges=[ex],
        status=r.status, artefacts={"page.body": (r.content_type or "application/octet-stream", r.content)},
        environment=environment(engine="http", browser_version=None, user_agent=user_agent, policy=policy),
        notes=["no browser installed: the page was fetched over HTTP only, not rendered"]
              + [f"redirect {s} from {u}" for u, s in r.redirects],
        timing={"total_ms": round((finished_at - started_at).total_seconds() * 1000, 1)})


def environment(*, engine: str, browser_version: str | None, user_agent: str, policy: CapturePolicy,
                executable: str | None = None) -> dict[str, Any]:
    """The capture environment as the manifest records it."""
    env: dict[str, Any] = {
        "engine": engine, "user_agent": user_agent, "proxy": "none",
        "network": "every request answered by the SSRF guard; the browser resolves no names itself",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(), "playwright": _version("playwright"),
        "hostname": platform.node(), "clock": "system clock, UTC",
    }
    if engine == "chromium":
        env.update({"browser": "Chromium (headless)", "browser_version": browser_version,
                    "rendering_engine": f"Blink {browser_version}", "executable": executable,
                    "viewport": {"width": policy.viewport_width, "height": policy.viewport_height},
                    "device_scale_factor": 1, "locale": "en-US", "timezone": "UTC", "profile": "fresh context"})
    return env


def summarise(exchanges: Sequence[Exchange]) -> dict[str, Any]:
    """Resolved addresses of every host the capture reached."""
    addrs: dict[str, set[str]] = {}
    for e in exchanges:
        if e.resolved_ip:
            addrs.setdefault(urlsplit(e.url).netloc, set()).add(e.resolved_ip)
    return {host: sorted(ips) for host, ips in sorted(addrs.items())}
