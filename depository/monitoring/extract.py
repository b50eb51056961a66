"""What a fetched page offers for matching: its visible text, its images, or (a feed) its item links.

Pure functions over bytes (no I/O). HTML goes through the standard library's `html.parser`, which never
fails on malformed markup and runs no scripts; feeds (RSS 2.0, Atom) through `xml.etree`, whose expat
refuses entity-expansion bombs. Image candidates: `<img src>`, the first `srcset` candidate, `<source
srcset>` in `<picture>`, and `og:image` / `twitter:image` meta tags (the picture a page shows when shared,
often the copied work itself).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # expat limits entity expansion and loads no external entities
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

__all__ = ["PageContent", "extract_feed_links", "extract_html", "is_feed", "looks_like_html"]

_SKIP_TEXT_IN = {"script", "style", "noscript", "template", "svg", "head", "title"}
_BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "blockquote"}
_IMAGE_META = {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
MAX_TEXT_CHARS = 2_000_000
MAX_FEED_LINKS = 100


@dataclass
class PageContent:
    """Text and absolute image URLs of one page, in document order, without duplicates."""

    text: str
    image_urls: list[str] = field(default_factory=list)
    title: str = ""


class _PageParser(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base_url
        self.images: list[str] = []
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._chars = 0

    def _add_image(self, raw: str | None) -> None:
        if not raw:
            return
        raw = raw.strip()
        if not raw or raw.startswith("data:"):
            return
        absolute = urljoin(self.base, raw)
        if urlsplit(absolute).scheme in ("http", "https") and absolute not in self.images:
            self.images.append(absolute)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"] or "")
        elif tag == "img":
            self._add_image(a.get("src") or a.get("data-src"))
            if a.get("srcset"):
                self._add_image(_first_srcset(a["srcset"] or ""))
        elif tag == "source" and a.get("srcset"):
            self._add_image(_first_srcset(a["srcset"] or ""))
        elif tag == "meta":
            key = (a.get("property") or a.get("name") or "").strip().lower()
            if key in _IMAGE_META:
                self._add_image(a.get("content"))
        if tag == "title":
            self._in_title = True
        if tag in _SKIP_TEXT_IN:
            self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP_TEXT_IN and self._skip_depth:
            self._skip_depth -= 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        if self._skip_depth or self._chars > MAX_TEXT_CHARS:
            return
        self.parts.append(data)
        self._chars += len(data)


def _first_srcset(srcset: str) -> str:
    first = srcset.split(",", 1)[0].strip()
    return first.split()[0] if first else ""


_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode_html(body: bytes, content_type_header: str | None) -> str:
    """Decode with the header's charset, else a <meta charset>, else UTF-8; undecodable bytes replaced."""
    charset = None
    if content_type_header and "charset=" in content_type_header.lower():
        charset = content_type_header.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"')
    if charset is None:
        m = _CHARSET_RE.search(body[:4096])
        charset = m.group(1).decode("ascii") if m else "utf-8"
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def extract_html(body: bytes, base_url: str, content_type_header: str | None = None) -> PageContent:
    """Visible text and image URLs of an HTML page (never raises on malformed markup)."""
    parser = _PageParser(base_url)
    parser.feed(decode_html(body, content_type_header))
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    return PageContent(text=text, image_urls=parser.images, title=" ".join("".join(parser.title_parts).split()))


def looks_like_html(content_type: str, body: bytes) -> bool:
    if content_type in ("text/html", "application/xhtml+xml"):
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def is_feed(content_type: str, body: bytes) -> bool:
    """RSS or Atom by media type, or by the root element of an XML document."""
    if content_type in ("application/rss+xml", "application/atom+xml"):
        return True
    head = body[:1024].lstrip()
    if content_type.endswith("xml") or head.startswith(b"<?xml"):
        return re.search(rb"<(rss|feed|rdf:RDF)[\s>]", head) is not None
    return False


def extract_feed_links(body: bytes, base_url: str, limit: int = MAX_FEED_LINKS) -> list[str]:
    """Item links of an RSS 2.0 / RSS 1.0 / Atom feed, newest first as the feed lists them.

    Raises ValueError on XML that does not parse (the caller records a failed fetch).
    """
    try:
        root = ET.fromstring(body)  # noqa: S314  (expat: no external entities, expansion limited)
    except ET.ParseError as e:
        raise ValueError(f"feed is not well-formed XML: {e}") from e
    links: list[str] = []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        href = None
        if tag == "link":
            if el.get("href"):  # Atom
                if el.get("rel", "alternate") == "alternate":
                    href = el.get("href")
            elif el.text and el.text.strip():  # RSS
                href = el.text.strip()
        if href:
            absolute = urljoin(base_url, href)
            if urlsplit(absolute).scheme in ("http", "https") and absolute not in links and absolute != base_url:
                links.append(absolute)
        if len(links) >= limit:
            break
    return links
