"""Text of registered works deposited as PDF or Word (.docx), as a stream of pieces for fingerprinting.

Pure readers over a binary source (bytes or a seekable file), no database. Both are bounded: a PDF is read
page by page through pypdf (which parses the cross-reference table and decodes one page's content stream
at a time), a .docx is a ZIP whose ``word/document.xml`` is parsed incrementally with expat (no entity
expansion, no external entities) through a reader that stops after ``MAX_DOCX_XML_BYTES`` of inflated
XML, so a ZIP bomb costs at most that much CPU and no memory beyond one parser buffer.

Errors are ``WorkTextError`` with a short ``reason`` (``bad-pdf``, ``encrypted-pdf``, ``bad-docx``,
``docx-too-large``); the caller turns them into a deposit's ``monitoring.status = failed``.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from typing import IO, Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

__all__ = ["MAX_DOCX_XML_BYTES", "WorkTextError", "docx_text", "pdf_text"]

MAX_DOCX_XML_BYTES = 512 * 1024 * 1024
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_PARTS = ("word/document.xml",)


class WorkTextError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _file(source: bytes | BinaryIO) -> BinaryIO:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source)
    source.seek(0)
    return source


def pdf_text(source: bytes | BinaryIO) -> Iterator[str]:
    """The text layer of each page in order (pypdf's ``extract_text``); a page separator is a newline."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable PDFs warn per object
    try:
        reader = PdfReader(_file(source), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):  # an owner password only still opens with the empty user one
                    raise WorkTextError("encrypted-pdf", "the PDF is encrypted with a user password")
            except NotImplementedError as e:
                raise WorkTextError("encrypted-pdf", f"unsupported PDF encryption ({e})") from e
        pages = reader.pages
        for i in range(len(pages)):
            yield (pages[i].extract_text() or "") + "\n"
    except WorkTextError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as e:
        # pypdf raises these on damaged files; all mean "cannot read this PDF's text".
        raise WorkTextError("bad-pdf", f"cannot read the PDF's text ({type(e).__name__}: {e})"[:300]) from e


class _Capped(io.RawIOBase):
    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner, self.left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise WorkTextError("docx-too-large", f"document.xml inflates beyond {MAX_DOCX_XML_BYTES} bytes")
        data = self.inner.read(min(len(b), self.left, 1 << 20))
        self.left -= len(data)
        b[: len(data)] = data
        return len(data)


def docx_text(source: bytes | BinaryIO, *, max_xml_bytes: int = MAX_DOCX_XML_BYTES) -> Iterator[str]:
    """Text of a .docx body: ``w:t`` runs joined, a newline per paragraph, a tab per ``w:tab``."""
    try:
        archive = zipfile.ZipFile(_file(source))
        names = set(archive.namelist())
        part = next((p for p in _DOCX_PARTS if p in names), None)
        if part is None:
            raise WorkTextError("bad-docx", "the ZIP has no word/document.xml (not a Word document)")
        with archive.open(part) as raw:
            stream = _Capped(raw, max_xml_bytes)
            parser = XMLPullParser(events=("end",))  # type: ignore[var-annotated]
            buf: list[str] = []
            size = 0
            while chunk := stream.read(1 << 20):
                parser.feed(chunk)
                for event in parser.read_events():
                    el: Any = event[1]  # type: ignore[misc]
                    if not isinstance(el, Element):
                        continue
                    if el.tag == _W + "t" and el.text:
                        buf.append(el.text)
                        size += len(el.text)
                    elif el.tag == _W + "tab":
                        buf.append("\t")
                    elif el.tag == _W + "p":
                        buf.append("\n")
                        el.clear()
                        if size > 1 << 20:
                            yield "".join(buf)
                            buf, size = [], 0
            parser.close()
            if buf:
                yield "".join(buf)
    except WorkTextError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ParseError, EOFError, OSError, RuntimeError, ValueError) as e:
        raise WorkTextError("bad-docx", f"cannot read the .docx ({type(e).__name__}: {e})"[:300]) from e
