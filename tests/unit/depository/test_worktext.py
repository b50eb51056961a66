"""Works deposited as PDF or .docx are fingerprinted from their text; every work gets a verdict."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from depository.monitoring.fingerprint import fingerprint_text, match_texts
from depository.monitoring.service import fingerprint_work
from depository.monitoring.worktext import WorkTextError, docx_text, pdf_text

GPL2 = Path("/usr/share/common-licenses/GPL-2").read_text(encoding="utf-8")
BSD = Path("/usr/share/common-licenses/BSD").read_text(encoding="utf-8")


def make_pdf(text: str) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    y = 800
    for line in text.splitlines():
        c.drawString(40, y, line[:110])
        y -= 12
        if y < 40:
            c.showPage()
            y = 800
    c.save()
    return buf.getvalue()


def make_docx(text: str) -> bytes:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    paras = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{line.replace("&", "&amp;").replace("<", "&lt;")}</w:t></w:r></w:p>'
        for line in text.splitlines()
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", f'<?xml version="1.0"?><w:document xmlns:w="{w}"><w:body>{paras}'
                                        "</w:body></w:document>")
    return buf.getvalue()


def test_pdf_work_text_matches_the_plain_text_work() -> None:
    result = fingerprint_work(make_pdf(GPL2), "application/pdf", "gpl2.pdf")
    assert result.status == "fingerprinted" and result.reason is None and len(result.fingerprints) == 1
    score, _ = match_texts(result.fingerprints[0], fingerprint_text(GPL2))  # type: ignore[arg-type]
    assert score > 0.8
    assert match_texts(result.fingerprints[0], fingerprint_text(BSD))[0] < 0.1  # type: ignore[arg-type]


def test_docx_work_text_matches_and_streams_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "gpl2.docx"
    path.write_bytes(make_docx(GPL2))
    with path.open("rb") as f:
        result = fingerprint_work(f, "application/octet-stream", "gpl2.docx")
    assert result.status == "fingerprinted"
    assert match_texts(result.fingerprints[0], fingerprint_text(GPL2))[0] > 0.95  # type: ignore[arg-type]


def test_scanned_pdf_without_text_layer_fails_with_a_reason() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(buf, "PDF")
    result = fingerprint_work(buf.getvalue(), "application/pdf", "scan.pdf")
    assert result.status == "failed" and result.reason is not None and "no text layer" in result.reason


@pytest.mark.parametrize(
    ("data", "ctype", "name", "status", "reason"),
    [
        (b"%PDF-1.7\n garbage", "application/pdf", "x.pdf", "failed", "bad-pdf"),
        (b"PK\x03\x04 not a zip", DOCX := "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "x.docx", "failed", "bad-docx"),
        (b"\x89PNG\r\n\x1a\n truncated", "image/png", "x.png", "failed", "not-an-image"),
        (b"\xff\xfe\x00\x01binary", "application/zip", "x.zip", "unsupported", "is not an image"),
        (b"caf\xe9 latin-1", "text/plain", "x.txt", "failed", "not-utf8"),
        (b" ... -- ", "text/plain", "x.txt", "failed", "empty-text"),
    ],
)
def test_every_work_gets_a_verdict(data: bytes, ctype: str, name: str, status: str, reason: str) -> None:
    result = fingerprint_work(data, ctype, name)
    assert result.status == status and result.reason is not None and reason in result.reason
    assert result.fingerprints == [] and result.to_json()["fingerprints"] == 0


def test_docx_without_a_body_and_a_docx_bomb_are_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other.xml", "<a/>")
    with pytest.raises(WorkTextError, match="bad-docx"):
        list(docx_text(buf.getvalue()))
    bomb = make_docx("word " * 400_000)  # 2 MB of XML inflated from a small ZIP
    with pytest.raises(WorkTextError, match="docx-too-large"):
        list(docx_text(bomb, max_xml_bytes=1 << 20))


def test_pdf_pages_stream_in_order() -> None:
    pages = list(pdf_text(make_pdf("first page line\n" * 70 + "second page line")))
    assert len(pages) == 2 and "first page line" in pages[0] and "second page line" in pages[1]
