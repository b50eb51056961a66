"""On-demand web captures: a capture resource, run in the background, deposited as one matter.

A capture goes `queued -> running -> done | failed`; its resource (what `GET /v1/captures/<id>`
answers) is a small JSON file, `$HOME/captures/<tenant>/<id>/capture.json`, written atomically. The API
process only creates it and hands the id to a runner (rq on the `monitoring` queue when Redis is
configured, so `depository worker` runs it; otherwise a thread of the process that asked). Files rather
than a table: the capture's state is tiny, written by one runner at a time, and needs no migration beside
the other branches' schema heads; the deposits it produces are ordinary rows in the log.

A finished capture deposits every artefact (WARC, screenshot, PDF, DOM, HAR, TLS certificates) and the
signed manifest (`evidence.capture_manifest`) as `web-capture` deposits of one matter (the caller's, or
`capture:<id>`), in one transaction: all of the capture is in the log or none of it. Artefact bytes are
kept like monitoring's captures: in the tenant's encrypted content store when the tenant stores content,
otherwise under the capture's directory (mode 0600).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from depository.capture.browser import (
    BrowserUnavailable,
    CapturePolicy,
    CaptureResult,
    browser_available,
    capture_browser,
    capture_http,
    summarise,
)
from depository.capture.clock import clock_probe
from depository.capture.warc import build_capture_warc
from depository.deposits import DepositRequest, new_deposit_ids, rfc3339_ms
from depository.errors import Conflict, NotFound, ValidationFailed
from depository.kinds import REF_RE
from depository.monitoring.fetcher import FetchError
from evidence.capture_manifest import artefact_entry, key_id, sign_manifest
from notary_bridge.serving import write_atomic
from notary_bridge.tsa import TimeStamper

if TYPE_CHECKING:
    from depository.wiring import Services

__all__ = ["Captures", "capture_json"]

log = logging.getLogger(__name__)
CAPTURE_ID_RE = re.compile(r"^cap_[0-9a-f]{24}$")
SIGNING_KEY_FILE = "capture-signing-key.pem"
MANIFEST_NAME = "manifest.json"
MAX_URL = 4096


def capture_json(rec: dict[str, Any]) -> dict[str, Any]:
    """The public form of a capture resource."""
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The capture service's Ed25519 manifest key (created on first use, mode 0600)."""
    path = keys_dir / SIGNING_KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process is creating it
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            try:
                os.link(path.with_suffix(".tmp"), path)  # first one wins; never overwrite a key
            except FileExistsError:
                pass
            os.unlink(path.with_suffix(".tmp"))
    loaded = load_pem_private_key(path.read_bytes(), None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return loaded


class Captures:
    """Create, run and read captures of one deployment."""

    def __init__(self, services: Services, *, runner: Callable[[str, str], None] | None = None,
                 capture_fn: Callable[[str, CapturePolicy], CaptureResult] | None = None,
                 stamper: TimeStamper | None = None) -> None:
        self.s = services
        self.stamper = stamper  # the TSA the clock is checked against (None: not measured)
        self.root = services.config.home / "captures"
        self._runner = runner
        self._capture_fn = capture_fn
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # ---- the resource ------------------------------------------------------------------------------

    def policy(self) -> CapturePolicy:
        c = self.s.config
        return CapturePolicy(allow_cidrs=tuple(c.fetch_allow_cidrs), timeout_s=c.capture_timeout_s,
                             max_total_bytes=c.capture_max_bytes, max_resource_bytes=c.fetch_max_bytes,
                             ca_file=c.fetch_ca_file)

    def _dir(self, tenant_id: str, capture_id: str) -> Path:
        if not CAPTURE_ID_RE.match(capture_id):
            raise NotFound(f"no capture {capture_id[:80]}")
        return self.root / tenant_id / capture_id

    def _write(self, tenant_id: str, rec: dict[str, Any]) -> None:
        write_atomic(self._dir(tenant_id, rec["id"]) / "capture.json",
                     json.dumps(rec, indent=2, ensure_ascii=False).encode(), 0o600)

    def get(self, tenant_id: str, capture_id: str) -> dict[str, Any]:
        path = self._dir(tenant_id, capture_id) / "capture.json"
        try:
            rec: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError as e:
            raise NotFound(f"no capture {capture_id}") from e
        return rec

    def create(self, tenant_id: str, url: Any, *, matter: Any = None, operator: Any = None) -> dict[str, Any]:
        """Validate and queue a capture; returns its resource (status `queued`)."""
        if not isinstance(url, str) or not 0 < len(url) <= MAX_URL or not url.isprintable():
            raise ValidationFailed(f"url must be 1 to {MAX_URL} printable characters")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationFailed("url must be an absolute http or https URL")
        if parts.username is not None or parts.password is not None:
            raise ValidationFailed("url must not carry a user name or password")
        if matter is not None and (not isinstance(matter, str) or not REF_RE.match(matter)):
            raise ValidationFailed("matter must be 1-128 characters of letters, digits and _.:/#-")
        if operator is not None and (not isinstance(operator, str) or not 0 < len(operator) <= 255
                                     or not operator.isprintable()):
            raise ValidationFailed("operator must be 1 to 255 printable characters")
        capture_id = "cap_" + secrets.token_hex(12)
        rec: dict[str, Any] = {"id": capture_id, "url": url, "matter": matter or f"capture:{capture_id}",
               "operator": operator or tenant_id, "status": "queued", "progress": "queued",
               "created_at": rfc3339_ms(datetime.now(UTC)), "engine": None, "deposits": [],
               "manifest_deposit": None, "error": None}
        self._write(tenant_id, rec)
        self._submit(tenant_id, capture_id)
        return rec

    def _submit(self, tenant_id: str, capture_id: str) -> None:
        if self._runner is not None:
            self._runner(tenant_id, capture_id)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture")
            self._pool.submit(self._run_logged, tenant_id, capture_id)

    def _run_logged(self, tenant_id: str, capture_id: str) -> None:
        try:
            self.run(tenant_id, capture_id)
        except Exception:
            log.exception("capture %s failed unexpectedly", capture_id)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # ---- running -----------------------------------------------------------------------------------

    def run(self, tenant_id: str, capture_id: str) -> dict[str, Any]:
        """Capture and deposit (idempotent: a finished capture is left as it is)."""
        rec = self.get(tenant_id, capture_id)
        if rec["status"] in ("done", "failed"):
            return rec
        rec.update(status="running", progress="rendering", started_at=rfc3339_ms(datetime.now(UTC)))
        self._write(tenant_id, rec)
        try:
            clock: list[dict[str, Any]] = []
            tokens: dict[str, bytes] = {}
            self._probe(capture_id, "start", clock, tokens)
            result = self._capture(rec["url"])
            self._probe(capture_id, "end", clock, tokens)
            result.environment["clock_offset"] = clock or "not measured: no TSA configured"
            for name, token in tokens.items():
                result.artefacts[name] = ("application/timestamp-reply", token)
            rec.update(progress="depositing", engine=result.engine)
            self._write(tenant_id, rec)
            self._deposit(tenant_id, rec, result)
        except FetchError as e:
            rec.update(status="failed", progress="failed", error=e.diagnostics())
        except Exception as e:
            log.exception("capture %s failed", capture_id)
            rec.update(status="failed", progress="failed", error=f"capture failed: {type(e).__name__}: {e}"[:500])
        else:
            rec.update(status="done", progress="done")
        rec["finished_at"] = rfc3339_ms(datetime.now(UTC))
        self._write(tenant_id, rec)
        return rec

    def _probe(self, capture_id: str, moment: str, clock: list[dict[str, Any]], tokens: dict[str, bytes]) -> None:
        if self.stamper is None:
            return
        entry, token = clock_probe(self.stamper, capture_id, moment)
        clock.append(entry)
        if token is not None:
            tokens[f"clock-{moment}.tsr"] = token

    def _capture(self, url: str) -> CaptureResult:
        policy = self.policy()
        if self._capture_fn is not None:
            return self._capture_fn(url, policy)
        if browser_available():
            try:
                return capture_browser(url, policy)
            except BrowserUnavailable as e:
                log.warning("browser capture unavailable (%s); falling back to HTTP", e)
        return capture_http(url, policy)

    def _deposit(self, tenant_id: str, rec: dict[str, Any], result: CaptureResult) -> None:
        capture_id = rec["id"]
        artefacts: dict[str, tuple[str, bytes]] = {}
        info = {"software": "evidence-depository capture (Playwright + warcio)", "operator": rec["operator"],
                "format": "WARC File Format 1.1", "capture": capture_id, "url": result.url,
                "engine": result.engine, "browser": result.environment.get("browser_version") or "none"}
        artefacts["capture.warc.gz"] = ("application/warc", build_capture_warc(
            result.exchanges, info=info, filename=f"{capture_id}.warc.gz"))
        artefacts.update(result.artefacts)
        certs = result.tls_certificates_pem()
        if certs:
            artefacts["tls-certificates.pem"] = ("application/x-pem-file", certs)
        key = load_signing_key(self.s.config.keys_dir)
        body = {
            "capture_id": capture_id, "url": result.url, "final_url": result.final_url, "title": result.title,
            "status": result.status, "engine": result.engine, "operator": rec["operator"],
            "depositor": tenant_id, "matter": rec["matter"],
            "started_at": rfc3339_ms(result.started_at), "finished_at": rfc3339_ms(result.finished_at),
            "environment": result.environment, "policy": self.policy().to_json(),
            "artefacts": [artefact_entry(n, ct, b) for n, (ct, b) in artefacts.items()],
            "requests": [e.summary() for e in result.exchanges],
            "refused": [{"url": e.url, "reason": e.refused} for e in result.refused],
            "resolved_addresses": summarise(result.exchanges), "timing": result.timing, "notes": result.notes,
        }
        manifest = sign_manifest(json.loads(json.dumps(body, default=str)), key)
        artefacts[MANIFEST_NAME] = ("application/json", manifest)
        ids = new_deposit_ids(len(artefacts))
        tenant: Any = self.s.tenants.get(tenant_id)
        into_store = bool(tenant.store_content and tenant.wrapped_content_key)
        reqs = []
        for dep_id, (name, (ctype, data)) in zip(ids, artefacts.items(), strict=True):
            if into_store:
                self.s.content.put(tenant_id, dep_id, tenant.content_cipher, tenant.wrapped_content_key,
                                   io.BytesIO(data))
            else:
                path = self._dir(tenant_id, capture_id) / "artefacts" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data, 0o600)
            meta = {"url": result.url, "captured_at": rfc3339_ms(result.started_at), "matter": rec["matter"],
                    "capture": capture_id, "artefact": name}
            if name == MANIFEST_NAME:
                meta["manifest_key_id"] = key_id(key.public_key())
            reqs.append(DepositRequest("web-capture", hashlib.sha256(data).digest(), hashlib.new("sm3", data).digest(),
                                       len(data), meta, f"{capture_id}-{name}", ctype.split(";")[0]))
        deposits = self.s.deposits.create_many(tenant_id, reqs, ids=ids, content_stored=into_store)
        assert isinstance(deposits, list)  # no idempotency key: never a replay
        rec["deposits"] = [{"artefact": name, "deposit_id": d.id, "content_type": artefacts[name][0],
                            "sha256": d.sha256, "sm3": d.sm3, "size": d.size}
                           for name, d in zip(artefacts, deposits, strict=True)]
        rec["manifest_deposit"] = ids[-1]
        rec["refused_requests"] = len(result.refused)
        rec["requests"] = len(result.exchanges)

    def packet(self, tenant_id: str, capture_id: str, *, preliminary: bool = False) -> tuple[bytes, str]:
        """The signed matter packet of a finished capture: capture pages first, every artefact attached.

        Conflict (409, retry) until the capture's deposits are in a checkpoint; NotCourtReady (409) until
        they are witnessed and timestamped, unless `preliminary`. Returns the PDF and its status."""
        from depository.packets import build_packet_status
        from evidence.capture_packet import CapturePages

        rec = self.get(tenant_id, capture_id)
        if rec["status"] != "done":
            raise Conflict(f"capture {capture_id} is {rec['status']}, not done", retry_after=2)
        deposits, originals, blobs = [], {}, {}
        for d in rec["deposits"]:
            deposits.append(self.s.deposits.get(tenant_id, d["deposit_id"]))
            blobs[d["artefact"]] = self.artefact(tenant_id, capture_id, d["artefact"])[1]
            originals[d["deposit_id"]] = blobs[d["artefact"]]
        pages = CapturePages(manifest=blobs[MANIFEST_NAME], screenshot=blobs.get("screenshot.png"))
        return build_packet_status(self.s, deposits, matter=rec["matter"], originals=originals, capture=pages,
                                   preliminary=preliminary)

    def manifest(self, tenant_id: str, capture_id: str) -> dict[str, Any]:
        """The parsed manifest of a finished capture."""
        m: dict[str, Any] = json.loads(self.artefact(tenant_id, capture_id, MANIFEST_NAME)[1])
        return m

    def artefact(self, tenant_id: str, capture_id: str, name: str) -> tuple[dict[str, Any], bytes]:
        """(its deposit entry, bytes) of one artefact of a finished capture."""
        rec = self.get(tenant_id, capture_id)
        hit = next((d for d in rec.get("deposits", []) if d["artefact"] == name), None)
        if hit is None:
            raise NotFound(f"capture {capture_id} has no artefact {name[:80]}")
        path = self._dir(tenant_id, capture_id) / "artefacts" / name
        if path.is_file():
            return hit, path.read_bytes()
        tenant: Any = self.s.tenants.get(tenant_id)
        return hit, self.s.content.read(tenant_id, hit["deposit_id"], tenant.content_cipher,
                                                      tenant.wrapped_content_key)
