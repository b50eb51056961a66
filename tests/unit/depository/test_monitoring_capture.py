"""WARC capture: written with warcio, read back with warcio's own reader (a round trip, not a string check)."""

from __future__ import annotations

import io
import json
import ssl
from datetime import UTC, datetime

from warcio.archiveiterator import ArchiveIterator

from depository.monitoring.capture import CaptureMatch, build_warc
from depository.monitoring.fetcher import FetchResult


def result(url: str, body: bytes, ctype: str, cert: bytes | None = None) -> FetchResult:
    return FetchResult(url=url, method="GET", status=200, reason="OK", http_version="HTTP/1.1",
                       request_headers=[("Host", "copy.example"), ("User-Agent", "ua"),
                                        ("Accept-Encoding", "identity")],
                       response_headers=[("Content-Type", ctype), ("Transfer-Encoding", "chunked")], body=body,
                       content=body, fetched_at=datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC),
                       resolved_ip="203.0.113.7", port=443, peer_cert_der=cert,
                       redirects=[("http://copy.example/p", 301)])


def test_round_trip() -> None:
    cert = ssl.PEM_cert_to_DER_cert(
        "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n")  # opaque bytes are enough here
    page = result("https://copy.example/p", b"<html>copy</html>", "text/html", cert)
    image = result("https://copy.example/i.jpg", b"\xff\xd8jpeg", "image/jpeg")
    warc = build_warc(page, [image], [CaptureMatch("dep_w", "image:phash+dhash", 0.93, image.url)], operator="log")
    recs = list((r.rec_type, r.rec_headers, r.http_headers, r.content_stream().read())
                for r in ArchiveIterator(io.BytesIO(warc)))
    kinds = [k for k, *_ in recs]
    assert kinds == ["warcinfo", "response", "request", "metadata", "metadata", "response", "request"]
    _, rh, hh, body = recs[1]
    assert rh.get_header("WARC-Target-URI") == page.url and rh.get_header("WARC-IP-Address") == "203.0.113.7"
    assert rh.get_header("WARC-Date") == "2026-11-26T12:00:01Z" and body == b"<html>copy</html>"
    assert hh.get_header("X-Archive-Orig-Transfer-Encoding") == "chunked" and hh.get_header("Transfer-Encoding") is None
    assert recs[2][2].get_header("User-Agent") == "ua" and recs[2][2].protocol == "GET"
    meta = json.loads(recs[3][3])
    assert meta["resolved_ip"] == "203.0.113.7" and meta["tls"] and meta["redirects"][0]["status"] == 301
    assert meta["matches"] == [{"work_deposit": "dep_w", "method": "image:phash+dhash", "score": 0.93,
                                "matched_url": image.url}]
    assert recs[4][1].get_header("Content-Type") == "application/x-pem-file" and b"BEGIN CERTIFICATE" in recs[4][3]
    assert recs[3][1].get_header("WARC-Concurrent-To") == rh.get_header("WARC-Record-ID")
    assert recs[5][3] == b"\xff\xd8jpeg"
