"""Forensic capture of a matching page as a WARC file (ISO 28500, written with warcio).

Why WARC: it is the archival format courts, the Internet Archive and tools such as `warcio`, `pywb` and
`ReplayWeb.page` read; it keeps each exchange's request and response with their headers, and lets us add
metadata records beside them. One capture file holds:

    warcinfo                      who captured, with what software, and why (the alert's works)
    request / response            the page: the exact request headers sent, status, response headers, body;
                                  `WARC-IP-Address` is the address the fetcher resolved and connected to
    metadata (application/json)   fetch time, resolved IP, port, redirect hops, the matches (work, method,
                                  score, matched URL) -- concurrent to the page response
    metadata (x-pem-file)         the server's TLS certificate, when the page came over https
    request / response            every matched image, as fetched

`Transfer-Encoding` is not copied into the stored response headers: the body stored is the de-chunked
payload (http.client removes chunking), and a reader would otherwise try to de-chunk it again. The
original header value is kept as `X-Archive-Orig-Transfer-Encoding`.

Pure: FetchResults in, bytes out. The caller deposits the bytes (`web-capture`) so the capture is hashed,
logged, witnessed and timestamped like any deposit.
"""

from __future__ import annotations

import io
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

from depository.monitoring.fetcher import FetchResult

__all__ = ["CaptureMatch", "build_warc"]

SOFTWARE = "evidence-depository monitoring (warcio)"


@dataclass(frozen=True)
class CaptureMatch:
    """One reason the page was captured: a registered work it matched, how, and where on the page."""

    work_deposit_id: str
    method: str
    score: float
    matched_url: str

    def to_json(self) -> dict[str, Any]:
        return {"work_deposit": self.work_deposit_id, "method": self.method, "score": round(self.score, 4),
                "matched_url": self.matched_url}


def _response_headers(r: FetchResult) -> list[tuple[str, str]]:
    out = []
    for k, v in r.response_headers:
        if k.lower() == "transfer-encoding":
            out.append(("X-Archive-Orig-Transfer-Encoding", v))
        else:
            out.append((k, v))
    return out


def _request_path(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


def _write_exchange(writer: WARCWriter, r: FetchResult) -> str:
    """Write the request/response pair of one fetch; returns the response's WARC-Record-ID."""
    date = datetime_to_iso_date(r.fetched_at)
    resp_http = StatusAndHeaders(f"{r.status} {r.reason}".strip(), _response_headers(r), protocol=r.http_version)
    response = writer.create_warc_record(
        r.url, "response", payload=io.BytesIO(r.body), length=len(r.body), http_headers=resp_http,
        warc_headers_dict={"WARC-Date": date, "WARC-IP-Address": r.resolved_ip})
    req_http = StatusAndHeaders(f"{r.method} {_request_path(r.url)} HTTP/1.1", list(r.request_headers),
                                is_http_request=True)
    request = writer.create_warc_record(r.url, "request", payload=io.BytesIO(b""), length=0,
                                        http_headers=req_http, warc_headers_dict={"WARC-Date": date})
    writer.write_request_response_pair(request, response)
    return str(response.rec_headers.get_header("WARC-Record-ID"))


def build_warc(page: FetchResult, images: Sequence[FetchResult], matches: Sequence[CaptureMatch], *,
               operator: str, filename: str = "capture.warc.gz") -> bytes:
    """The gzipped WARC of `page`, the `images` that matched, and the metadata above."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    info = {"software": SOFTWARE, "operator": operator, "format": "WARC File Format 1.1",
            "description": "forensic capture of a page matching registered works: "
                           + ", ".join(sorted({m.work_deposit_id for m in matches}))}
    writer.write_record(writer.create_warcinfo_record(filename, info))
    page_id = _write_exchange(writer, page)
    meta = {
        "url": page.url, "fetched_at": page.fetched_at.isoformat(), "resolved_ip": page.resolved_ip,
        "port": page.port, "status": page.status, "redirects": [{"url": u, "status": s} for u, s in page.redirects],
        "tls": page.peer_cert_der is not None, "matches": [m.to_json() for m in matches],
        "images": [{"url": i.url, "resolved_ip": i.resolved_ip, "fetched_at": i.fetched_at.isoformat()}
                   for i in images],
    }
    date = datetime_to_iso_date(page.fetched_at)
    payload = json.dumps(meta, indent=2, ensure_ascii=False).encode()
    writer.write_record(writer.create_warc_record(
        page.url, "metadata", payload=io.BytesIO(payload), length=len(payload),
        warc_content_type="application/json",
        warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": page_id}))
    if page.peer_cert_der is not None:
        pem = ssl.DER_cert_to_PEM_cert(page.peer_cert_der).encode()
        writer.write_record(writer.create_warc_record(
            page.url, "metadata", payload=io.BytesIO(pem), length=len(pem),
            warc_content_type="application/x-pem-file",
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": page_id}))
    for image in images:
        _write_exchange(writer, image)
    return out.getvalue()
