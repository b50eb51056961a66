"""The monitoring service: registered works' fingerprints, scans of suspect pages, captures and alerts.

One `Monitoring` hangs off `Services.monitoring` (attached by `attach_monitoring`, called from wiring).

* **Works.** A copyright deposit with content (multipart upload) is fingerprinted after it commits
  (`register_work`); rows go to `monitoring_fingerprints`, and into an in-memory `SimilarityIndex` *per
  tenant* -- a tenant's alerts only ever concern its own works, so a query never even sees another
  tenant's fingerprints. The indexes are rebuilt from the table on first use and then follow it by row
  id (`_refresh`), so an rq worker process sees works registered through the API process.
* **Scans.** `scan_url` fetches a page (or a feed and its items) through the guarded `Fetcher`,
  extracts text and images, fingerprints them, and looks them up. Every fetched resource becomes a
  `monitoring_fetches` row, ok or failed with a reason: unreachable, slow, huge or malformed pages,
  non-images named .jpg and decompression bombs end there, never in an exception out of a worker.
* **Captures.** A match at or above the threshold triggers a forensic capture (`capture.build_warc`)
  deposited as `web-capture` in the work's tenant, and one alert per (work, page, matched resource).
  Repeated scans of an unchanged copy do not create new alerts or captures (dedupe key).
* **Where the WARC is kept.** Tenants that opted into content storage get it in the encrypted content
  store like any stored deposit (`content_stored = true`). For the others the depository keeps the WARC
  anyway, in `$DEPOSITORY_HOME/monitoring/captures/<tenant>/<deposit>.warc.gz` (0600): a capture is a
  copy of a public page, not the tenant's confidential document, and the alert and its packet are
  worthless without it. The deposit's hashes prove the file either way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from depository.deposits import DepositRequest, new_deposit_id, rfc3339_ms
from depository.errors import NotFound
from depository.monitoring.capture import CaptureMatch, build_warc
from depository.monitoring.extract import extract_feed_links, extract_html, is_feed, looks_like_html
from depository.monitoring.fetcher import Fetcher, FetchError, FetchResult
from depository.monitoring.fingerprint import (
    FingerprintError,
    ImageFingerprint,
    TextFingerprint,
    fingerprint_image,
    fingerprint_text,
)
from depository.monitoring.index import Match, SimilarityIndex
from depository.monitoring.models import AlertRow, FetchRow, FingerprintRow

if TYPE_CHECKING:
    from depository.monitoring.notify import Notifier
    from depository.monitoring.watches import Watches
    from depository.wiring import Services

__all__ = ["Monitoring", "ScanReport", "attach_monitoring"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".text", ".html", ".htm", ".csv", ".rst")
MAX_WORK_BYTES = 64 * 1024 * 1024  # larger uploads are deposited but not fingerprinted
MIN_PAGE_WORDS = 20  # a page with fewer words (navigation, captions) is not compared as a text
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml;q=0.9,*/*;q=0.5"
IMAGE_ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9,*/*;q=0.5"
MAX_FEED_ITEMS = 50


@dataclass
class ScanReport:
    """What one scan found: each fetched resource (ok or failed), each match, each new alert."""

    scan_id: str
    url: str
    fetches: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    # time.monotonic() by which the whole scan (page, feed items, images) must be done (issue 21: each of
    # up to 30 images had its own 10 s, longer than gunicorn's 120 s request timeout).
    deadline: float = float("inf")

    @property
    def ok(self) -> bool:
        return bool(self.fetches) and bool(self.fetches[0]["ok"])

    @property
    def reason(self) -> str | None:
        return None if self.ok or not self.fetches else self.fetches[0]["reason"]

    def to_json(self) -> dict[str, Any]:
        return {"scan_id": self.scan_id, "url": self.url, "ok": self.ok, "reason": self.reason,
                "fetches": self.fetches, "matches": self.matches, "alerts": self.alerts}


def fingerprint_work(data: bytes, content_type: str | None, filename: str | None
                     ) -> list[ImageFingerprint | TextFingerprint]:
    """Fingerprints of a registered work's content: an image, or a text (plain or HTML), else none."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    name = (filename or "").lower()
    looks_image = ctype.startswith("image/") or name.endswith(IMAGE_EXTENSIONS)
    looks_text = ctype.startswith("text/") or name.endswith(TEXT_EXTENSIONS)
    if looks_image or not looks_text:
        try:
            return [fingerprint_image(data)]
        except FingerprintError:
            if looks_image:
                return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    if ctype in ("text/html", "application/xhtml+xml") or name.endswith((".html", ".htm")):
        text = extract_html(data, "http://work.invalid/").text
    try:
        return [fingerprint_text(text)]
    except FingerprintError:
        return []


def _dedupe_key(work_id: str, page_url: str, matched_url: str) -> str:
    return hashlib.sha256(f"{work_id}\n{page_url}\n{matched_url}".encode()).hexdigest()[:40]


class Monitoring:
    """Works, scans, captures and alerts of every tenant (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        from depository.monitoring.notify import Notifier
        from depository.monitoring.watches import Watches

        self.s = services
        self.engine = services.engine
        c = services.config
        self.fetcher = Fetcher(allow_cidrs=c.fetch_allow_cidrs, timeout_s=c.fetch_timeout_s,
                               max_bytes=c.fetch_max_bytes, max_redirects=c.fetch_max_redirects,
                               user_agent=c.fetch_user_agent, ca_file=c.fetch_ca_file)
        self.captures_dir = c.home / "monitoring" / "captures"
        self._indexes: dict[str, SimilarityIndex] = {}
        self._last_row = -1  # -1: not loaded yet
        self._lock = threading.Lock()
        self.notifier: Notifier = Notifier(self)
        self.watches: Watches = Watches(self)

    # ---- lifecycle (Services.start_background / stop_background) -----------------------------------

    def start(self) -> None:
        """Rebuild the indexes from the table now (not at the first scan), then start the scheduler."""
        try:
            self.refresh()
        except Exception:  # the scheduler must still start; the next scan retries the load
            log.exception("loading monitoring fingerprints failed")
        try:
            self.notifier.seal_plain_secrets()  # endpoints made before secrets were sealed at rest
        except Exception:
            log.exception("sealing webhook secrets failed")
        self.watches.start()

    def stop(self) -> None:
        self.watches.stop()

    # ---- registered works --------------------------------------------------------------------------

    def register_work(self, tenant_id: str, deposit_id: str, data: bytes, content_type: str | None,
                      filename: str | None) -> list[str]:
        """Fingerprint a copyright deposit's content and store it; returns the kinds stored. Idempotent."""
        if len(data) > MAX_WORK_BYTES:
            return []
        fps = fingerprint_work(data, content_type, filename)
        kinds = []
        now = datetime.now(UTC)
        for fp in fps:
            kind = "image" if isinstance(fp, ImageFingerprint) else "text"
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(FingerprintRow).values(
                        tenant_id=tenant_id, deposit_id=deposit_id, kind=kind, algorithm=fp.algorithm,
                        data_json=json.dumps(fp.to_dict(), separators=(",", ":")), created_at=now))
            except SAIntegrityError:
                pass  # already registered (an idempotent replay of the upload)
            kinds.append(kind)
        self.refresh()
        return kinds

    def fingerprints_of(self, tenant_id: str, deposit_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(FingerprintRow.kind).where(
                FingerprintRow.tenant_id == tenant_id, FingerprintRow.deposit_id == deposit_id)).scalars())

    def refresh(self) -> None:
        """Bring the per-tenant indexes up to the fingerprint table (first call: a full rebuild)."""
        with self._lock:
            with self.engine.connect() as conn:
                rows = conn.execute(select(FingerprintRow.id, FingerprintRow.tenant_id, FingerprintRow.deposit_id,
                                           FingerprintRow.kind, FingerprintRow.data_json)
                                    .where(FingerprintRow.id > self._last_row).order_by(FingerprintRow.id)).all()
            if self._last_row < 0:
                self._last_row = 0
                by_tenant: dict[str, list[tuple[str, ImageFingerprint | TextFingerprint]]] = {}
                for r in rows:
                    by_tenant.setdefault(r.tenant_id, []).append((r.deposit_id, _parse_fp(r.kind, r.data_json)))
                for tenant_id, items in by_tenant.items():
                    self._indexes[tenant_id] = SimilarityIndex.from_rows(items)
            else:
                for r in rows:
                    index = self._indexes.get(r.tenant_id)
                    if index is None:
                        index = self._indexes[r.tenant_id] = SimilarityIndex()
                    index.add(r.deposit_id, _parse_fp(r.kind, r.data_json))
            if rows:
                self._last_row = max(self._last_row, rows[-1].id)

    def query(self, tenant_id: str, fp: ImageFingerprint | TextFingerprint) -> list[Match]:
        self.refresh()
        with self._lock:
            index = self._indexes.get(tenant_id)
            return index.query(fp) if index is not None else []

    def has_works(self, tenant_id: str) -> bool:
        self.refresh()
        with self._lock:
            return len(self._indexes.get(tenant_id) or ()) > 0

    # ---- scans -------------------------------------------------------------------------------------

    def scan_bytes(self, tenant_id: str, data: bytes, content_type: str | None, filename: str | None
                   ) -> list[dict[str, Any]]:
        """Matches of an uploaded suspect file. No URL, so nothing to capture and no alert."""
        out = []
        for fp in fingerprint_work(data, content_type, filename):
            for m in self.query(tenant_id, fp):
                out.append({"work_deposit": m.work_id, "method": m.method, "score": round(m.score, 4),
                            "matched": filename or "upload"})
        return out

    def scan_url(self, tenant_id: str, url: str, *, watch_id: str | None = None, kind: str = "auto",
                 capture: bool = True) -> ScanReport:
        """Fetch `url` (a page, an image, or a feed whose items are fetched) and match it. Never raises
        for anything the remote side does: failures are rows in the report and in monitoring_fetches."""
        report = ScanReport(scan_id="scn_" + secrets.token_hex(10), url=url,
                            deadline=time.monotonic() + self.s.config.scan_deadline_s)
        rows: list[dict[str, Any]] = []
        try:
            self._scan(tenant_id, url, kind, report, rows, watch_id, capture)
        finally:
            self._record(tenant_id, watch_id, report.scan_id, rows)
        report.fetches = [{k: r[k] for k in ("url", "role", "ok", "reason", "detail", "status", "resolved_ip")}
                          for r in rows]
        return report

    def _scan(self, tenant_id: str, url: str, kind: str, report: ScanReport, rows: list[dict[str, Any]],
              watch_id: str | None, capture: bool) -> None:
        try:
            page = self.fetcher.get(url, accept=PAGE_ACCEPT, deadline=report.deadline)
        except FetchError as e:
            rows.append(_failed(url, "page", e))
            return
        if kind == "feed" or (kind == "auto" and is_feed(page.content_type, page.content)):
            try:
                links = extract_feed_links(page.content, page.url)[:MAX_FEED_ITEMS]
            except ValueError as e:
                rows.append(_failed(url, "feed", FetchError("malformed-feed", str(e), resolved_ip=page.resolved_ip,
                                                            status=page.status)))
                return
            rows.append(_ok(page, "feed"))
            for link in links:
                if _out_of_time(report, link, "page", rows):
                    break
                try:
                    item = self.fetcher.get(link, accept=PAGE_ACCEPT, deadline=report.deadline)
                except FetchError as e:
                    rows.append(_failed(link, "page", e))
                    continue
                self._check_page(tenant_id, item, report, rows, watch_id, capture)
            return
        self._check_page(tenant_id, page, report, rows, watch_id, capture)

    def _check_page(self, tenant_id: str, page: FetchResult, report: ScanReport, rows: list[dict[str, Any]],
                    watch_id: str | None, capture: bool) -> None:
        page_row = _ok(page, "page")
        rows.append(page_row)
        found: list[tuple[Match, str, FetchResult | None]] = []  # (match, matched url, image fetch)
        if page.content_type.startswith("image/"):
            try:
                fp = fingerprint_image(page.content, with_crops=False)
            except FingerprintError as e:
                page_row.update(ok=False, reason=e.reason, detail=e.detail[:1000])
                return
            found += [(m, page.url, None) for m in self.query(tenant_id, fp)]
        elif looks_like_html(page.content_type, page.content) or page.content_type.startswith("text/"):
            if looks_like_html(page.content_type, page.content):
                content = extract_html(page.content, page.url, page.header("Content-Type"))
                text, images = content.text, content.image_urls
            else:
                text, images = page.content.decode("utf-8", "replace"), []
            checked = False
            if len(text.split()) >= MIN_PAGE_WORDS:
                try:
                    found += [(m, page.url, None) for m in self.query(tenant_id, fingerprint_text(text))]
                    checked = True
                except FingerprintError:
                    pass
            for image_url in images[: self.s.config.monitor_max_images_per_page]:
                if _out_of_time(report, image_url, "image", rows):
                    break
                try:
                    image = self.fetcher.get(image_url, accept=IMAGE_ACCEPT, deadline=report.deadline)
                except FetchError as e:
                    rows.append(_failed(image_url, "image", e))
                    continue
                image_row = _ok(image, "image")
                rows.append(image_row)
                try:
                    fp = fingerprint_image(image.content, with_crops=False)
                except FingerprintError as e:
                    image_row.update(ok=False, reason=e.reason, detail=e.detail[:1000])
                    continue
                checked = True
                found += [(m, image.url, image) for m in self.query(tenant_id, fp)]
            if not checked:
                page_row.update(ok=False, reason="no-content",
                                detail="no text long enough and no decodable image to compare")
        else:
            page_row.update(ok=False, reason="unsupported-content",
                            detail=f"cannot check content of type {page.content_type or 'unknown'}")
            return
        for m, matched_url, _ in found:
            report.matches.append({"work_deposit": m.work_id, "method": m.method, "score": round(m.score, 4),
                                   "page_url": page.url, "matched_url": matched_url})
        if found and capture:
            report.alerts += self._capture_and_alert(tenant_id, page, found, watch_id)

    # ---- captures and alerts -----------------------------------------------------------------------

    def _capture_and_alert(self, tenant_id: str, page: FetchResult,
                           found: list[tuple[Match, str, FetchResult | None]], watch_id: str | None) -> list[str]:
        best: dict[tuple[str, str], tuple[Match, FetchResult | None]] = {}
        for m, matched_url, image in found:
            key = (m.work_id, matched_url)
            if key not in best or m.score > best[key][0].score:
                best[key] = (m, image)
        keys = {_dedupe_key(w, page.url, u): (w, u) for w, u in best}
        with self.engine.connect() as conn:
            known = set(conn.execute(select(AlertRow.dedupe_key).where(
                AlertRow.tenant_id == tenant_id, AlertRow.dedupe_key.in_(list(keys)))).scalars())
        fresh = {k: v for k, v in keys.items() if k not in known}
        if not fresh:
            return []
        matches = sorted((CaptureMatch(w, best[(w, u)][0].method, best[(w, u)][0].score, u) for w, u in fresh.values()),
                         key=lambda c: -c.score)
        images: list[FetchResult] = []
        for w, u in fresh.values():
            image = best[(w, u)][1]
            if image is not None and all(i.url != image.url for i in images):
                images.append(image)
        capture_id = self._deposit_capture(tenant_id, page, images, matches)
        now = datetime.now(UTC)
        alert_ids = []
        for dedupe, (w, u) in fresh.items():
            m = best[(w, u)][0]
            alert_id = "alr_" + secrets.token_hex(10)
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(AlertRow).values(
                        id=alert_id, tenant_id=tenant_id, work_deposit_id=w, page_url=page.url, matched_url=u,
                        dedupe_key=dedupe, method=m.method, score=float(m.score), capture_deposit_id=capture_id,
                        watch_id=watch_id, status="new",
                        history_json=json.dumps([{"status": "new", "at": rfc3339_ms(now)}]),
                        created_at=now, updated_at=now))
            except SAIntegrityError:
                continue  # a concurrent scan of the same page alerted first
            alert_ids.append(alert_id)
        for alert_id in alert_ids:
            self.notifier.enqueue_alert(tenant_id, alert_id)
        if alert_ids:
            self.watches.kick_deliveries()
        return alert_ids

    def _deposit_capture(self, tenant_id: str, page: FetchResult, images: list[FetchResult],
                         matches: list[CaptureMatch]) -> str:
        """Deposit the WARC as a `web-capture` of the tenant; returns the deposit id."""
        dep_id = new_deposit_id()
        warc = build_warc(page, images, matches, operator=self.s.keys.origin, filename=f"{dep_id}.warc.gz")
        tenant: Any = self.s.tenants.get(tenant_id)
        stored = False
        if tenant.store_content and tenant.wrapped_content_key:
            self.s.content.put(tenant_id, dep_id, tenant.content_cipher, tenant.wrapped_content_key, io.BytesIO(warc))
            stored = True
        else:
            path = self.captures_dir / tenant_id / f"{dep_id}.warc.gz"
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(warc)
                f.flush()
                os.fsync(f.fileno())
        works = list(dict.fromkeys(m.work_deposit_id for m in matches))
        metadata: dict[str, Any] = {"url": page.url, "captured_at": rfc3339_ms(page.fetched_at),
                                    "work_deposit": works[0], "resolved_ip": page.resolved_ip}
        if len(works) > 1:
            metadata["works"] = works
        req = DepositRequest("web-capture", hashlib.sha256(warc).digest(), hashlib.new("sm3", warc).digest(),
                             len(warc), metadata, f"capture-{dep_id}.warc.gz", "application/warc")
        self.s.deposits.create_many(tenant_id, [req], ids=[dep_id], content_stored=stored)
        return dep_id

    def capture_bytes(self, tenant_id: str, deposit_id: str) -> bytes | None:
        """The WARC of a capture deposit, from the content store or the monitoring capture directory."""
        path = self.captures_dir / tenant_id / f"{deposit_id}.warc.gz"
        if path.is_file():
            return path.read_bytes()
        tenant: Any = self.s.tenants.get(tenant_id)
        if tenant.wrapped_content_key and self.s.content.exists(tenant_id, deposit_id):
            return self.s.content.read(tenant_id, deposit_id, tenant.content_cipher, tenant.wrapped_content_key)
        return None

    # ---- fetch log ---------------------------------------------------------------------------------

    def _record(self, tenant_id: str, watch_id: str | None, scan_id: str, rows: Iterable[dict[str, Any]]) -> None:
        values = [{**r, "tenant_id": tenant_id, "watch_id": watch_id, "scan_id": scan_id} for r in rows]
        if not values:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(FetchRow), values)

    def fetches(self, tenant_id: str, *, watch_id: str | None = None, scan_id: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
        q = select(FetchRow).where(FetchRow.tenant_id == tenant_id)
        if watch_id is not None:
            q = q.where(FetchRow.watch_id == watch_id)
        if scan_id is not None:
            q = q.where(FetchRow.scan_id == scan_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(FetchRow.id.desc()).limit(max(1, min(limit, 1000)))).all()
        return [{"url": r.url, "role": r.role, "ok": r.ok, "reason": r.reason, "detail": r.detail,
                 "status": r.status, "resolved_ip": r.resolved_ip, "scan_id": r.scan_id, "watch_id": r.watch_id,
                 "fetched_at": rfc3339_ms(_utc(r.fetched_at))} for r in rows]

    # ---- alerts ------------------------------------------------------------------------------------

    def alert_row(self, tenant_id: str, alert_id: str) -> Any:  # a Row of monitoring_alerts
        with self.engine.connect() as conn:
            row = conn.execute(select(AlertRow).where(AlertRow.id == alert_id,
                                                      AlertRow.tenant_id == tenant_id)).first()
        if row is None:
            raise NotFound(f"no alert {alert_id[:64]}")
        return row

    def alerts(self, tenant_id: str, *, status: str | None = None, limit: int = 100,
               offset: int = 0) -> list[Any]:
        q = select(AlertRow).where(AlertRow.tenant_id == tenant_id)
        if status:
            q = q.where(AlertRow.status == status)
        q = q.order_by(AlertRow.created_at.desc(), AlertRow.id).limit(max(1, min(limit, 1000))).offset(max(0, offset))
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def set_status(self, tenant_id: str, alert_id: str, status: str, note: str | None = None) -> Any:
        """Move an alert along the workflow (compare-and-set on the old status: no lost update)."""
        from depository.monitoring.workflow import check_transition

        row = self.alert_row(tenant_id, alert_id)
        check_transition(row.status, status)
        now = datetime.now(UTC)
        history = json.loads(row.history_json)
        entry: dict[str, Any] = {"status": status, "at": rfc3339_ms(now)}
        if note:
            entry["note"] = note[:1000]
        history.append(entry)
        with self.engine.begin() as conn:
            n = conn.execute(update(AlertRow).where(AlertRow.id == alert_id, AlertRow.status == row.status)
                             .values(status=status, history_json=json.dumps(history), updated_at=now)).rowcount
        if n != 1:
            from depository.errors import Conflict

            raise Conflict("the alert changed status meanwhile; reload and retry")
        return self.alert_row(tenant_id, alert_id)


def alert_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "status": row.status, "work_deposit": row.work_deposit_id,
            "capture_deposit": row.capture_deposit_id, "page_url": row.page_url, "matched_url": row.matched_url,
            "method": row.method, "score": round(row.score, 4), "watch_id": row.watch_id,
            "created_at": rfc3339_ms(_utc(row.created_at)), "updated_at": rfc3339_ms(_utc(row.updated_at)),
            "history": json.loads(row.history_json)}


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _parse_fp(kind: str, data_json: str) -> ImageFingerprint | TextFingerprint:
    data = json.loads(data_json)
    return ImageFingerprint.from_dict(data) if kind == "image" else TextFingerprint.from_dict(data)


def _ok(r: FetchResult, role: str) -> dict[str, Any]:
    return {"url": r.url, "role": role, "fetched_at": r.fetched_at, "ok": True, "reason": None, "detail": None,
            "status": r.status, "resolved_ip": r.resolved_ip, "elapsed_ms": round(r.elapsed_s * 1000, 1)}


def _out_of_time(report: ScanReport, url: str, role: str, rows: list[dict[str, Any]]) -> bool:
    """True (and a failed row saying so) once the scan's whole budget is spent: the rest is not fetched."""
    if time.monotonic() < report.deadline:
        return False
    rows.append(_failed(url, role, FetchError("scan-deadline", "the scan's time budget was spent before this fetch")))
    return True


def _failed(url: str, role: str, e: FetchError) -> dict[str, Any]:
    return {"url": url[:4096], "role": role, "fetched_at": datetime.now(UTC), "ok": False, "reason": e.reason,
            "detail": e.detail[:1000], "status": e.status, "resolved_ip": e.resolved_ip, "elapsed_ms": None}


def attach_monitoring(services: Services) -> Monitoring:
    """Give `services` its monitoring (called once from wiring.build_services)."""
    services.monitoring = Monitoring(services)
    return services.monitoring


def captures_root(home: Path) -> Path:
    return home / "monitoring" / "captures"
