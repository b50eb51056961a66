"""The WARC (ISO 28500, warcio) of every exchange a capture made, browser or HTTP-only.

One record pair (request, response) per exchange, in the order the guard answered them, each response
with `WARC-IP-Address` (the address the guard resolved, checked and connected to). A refused request has
no response: it is written as a `metadata` record (`application/json`, the URL and why it was refused),
so the WARC alone shows what the page tried to reach. A `warcinfo` record opens the file.

Pure: exchanges in, bytes out.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

__all__ = ["Exchange", "build_capture_warc"]


@dataclass
class Exchange:
    """One request the capture made (or refused), as sent and received."""

    url: str
    method: str
    started_at: datetime
    request_headers: list[tuple[str, str]]
    request_body: bytes = b""
    status: int | None = None
    reason: str = ""
    http_version: str = "HTTP/1.1"
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    resolved_ip: str | None = None
    port: int | None = None
    elapsed_ms: float = 0.0
    refused: str | None = None  # why the guard refused it (no request left the machine)
    resource_type: str = ""
    peer_cert_der: bytes | None = None

    def summary(self) -> dict[str, Any]:
        """What the manifest lists for this exchange (no bodies)."""
        out: dict[str, Any] = {"url": self.url, "method": self.method, "started_at": self.started_at.isoformat(),
                               "resource_type": self.resource_type}
        if self.refused is not None:
            out["refused"] = self.refused
            return out
        out.update({"status": self.status, "resolved_ip": self.resolved_ip, "port": self.port,
                    "elapsed_ms": round(self.elapsed_ms, 1), "bytes": len(self.body),
                    "response_headers": [[k, v] for k, v in self.response_headers]})
        return out


def _path(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


def _stored_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    # The body stored is de-chunked; keep the original header under another name (as monitoring does).
    return [("X-Archive-Orig-Transfer-Encoding", v) if k.lower() == "transfer-encoding" else (k, v)
            for k, v in headers]


def build_capture_warc(exchanges: Sequence[Exchange], *, info: dict[str, Any],
                       filename: str = "capture.warc.gz") -> bytes:
    """The gzipped WARC of `exchanges`, opened by a warcinfo record holding `info`."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    writer.write_record(writer.create_warcinfo_record(filename, {k: str(v) for k, v in info.items()}))
    for ex in exchanges:
        date = datetime_to_iso_date(ex.started_at)
        if ex.refused is not None or ex.status is None:
            payload = json.dumps({"url": ex.url, "method": ex.method, "refused": ex.refused or "no response",
                                  "resource_type": ex.resource_type}, ensure_ascii=False).encode()
            writer.write_record(writer.create_warc_record(
                ex.url, "metadata", payload=io.BytesIO(payload), length=len(payload),
                warc_content_type="application/json", warc_headers_dict={"WARC-Date": date}))
            continue
        resp_http = StatusAndHeaders(f"{ex.status} {ex.reason}".strip(), _stored_headers(ex.response_headers),
                                     protocol=ex.http_version)
        warc_headers = {"WARC-Date": date}
        if ex.resolved_ip:
            warc_headers["WARC-IP-Address"] = ex.resolved_ip
        response = writer.create_warc_record(ex.url, "response", payload=io.BytesIO(ex.body), length=len(ex.body),
                                             http_headers=resp_http, warc_headers_dict=warc_headers)
        req_http = StatusAndHeaders(f"{ex.method} {_path(ex.url)} HTTP/1.1", list(ex.request_headers),
                                    is_http_request=True)
        request = writer.create_warc_record(ex.url, "request", payload=io.BytesIO(ex.request_body),
                                            length=len(ex.request_body), http_headers=req_http,
                                            warc_headers_dict={"WARC-Date": date})
        writer.write_request_response_pair(request, response)
    return out.getvalue()
