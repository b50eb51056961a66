"""HTML and feed extraction: text without scripts, absolute image URLs (img, srcset, og:image), feeds."""

from __future__ import annotations

import pytest

from depository.monitoring.extract import extract_feed_links, extract_html, is_feed, looks_like_html

BASE = "https://blog.example/posts/1"


def test_text_and_images_from_messy_html() -> None:
    html = b"""<!doctype html><html><head><title>A  copy</title>
      <meta property="og:image" content="/og.jpg"><meta name="twitter:image" content="https://cdn.example/t.png">
      <script>var secret = "not text";</script><style>p{}</style></head>
      <body><p>First paragraph<p>second &amp; more <img src="a.png"><img src="data:image/png;base64,xx">
      <picture><source srcset="/big.webp 2x, /small.webp 1x"><img src="a.png" srcset="b.png 1x"></picture>
      <div>unclosed <b>bold"""
    page = extract_html(html, BASE, "text/html; charset=utf-8")
    assert page.title == "A copy"
    assert "First paragraph" in page.text and "second & more" in page.text and "secret" not in page.text
    assert page.image_urls == ["https://blog.example/og.jpg", "https://cdn.example/t.png",
                               "https://blog.example/posts/a.png", "https://blog.example/big.webp",
                               "https://blog.example/posts/b.png"]


def test_charset_from_meta_and_base_href() -> None:
    html = '<meta charset="gbk"><base href="https://img.example/x/"><p>版权作品</p><img src="p.jpg">'.encode("gbk")
    page = extract_html(html, BASE)
    assert "版权作品" in page.text and page.image_urls == ["https://img.example/x/p.jpg"]


def test_binary_garbage_does_not_raise() -> None:
    page = extract_html(bytes(range(256)) * 10, BASE, "text/html; charset=no-such-charset")
    assert isinstance(page.text, str)


def test_feeds_rss_and_atom() -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><link>https://blog.example/</link>
      <item><link>https://blog.example/a</link></item><item><link>/b</link></item></channel></rss>"""
    assert is_feed("application/xml", rss) and not looks_like_html("application/xml", rss)
    assert extract_feed_links(rss, "https://blog.example/feed") == [
        "https://blog.example/", "https://blog.example/a", "https://blog.example/b"]
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><link href="https://x.example/1"/>
      <link rel="enclosure" href="https://x.example/1.mp3"/></entry></feed>"""
    assert is_feed("application/atom+xml", atom)
    assert extract_feed_links(atom, "https://x.example/feed") == ["https://x.example/1"]
    assert not is_feed("text/html", b"<!doctype html><html>")


def test_entity_bomb_feed_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
      <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
      <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
      <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
      <rss><channel><item><link>&h;</link></item></channel></rss>"""
    with pytest.raises(ValueError, match="not well-formed"):
        extract_feed_links(bomb, "https://x.example/feed")
