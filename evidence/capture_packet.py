"""Packet pages of a web capture, and the verifier's check of a capture's attachments.

Pages (placed first in the capture's matter packet): what was captured (URL, final URL, title, times,
operator), the environment table from the signed manifest, the artefact list with both digests, the
requests the guard refused, then the full-page screenshot cut into A4-high strips so a tall page is
printed whole, at the same scale, page after page.

The check: among a packet's attached originals, each capture manifest must verify (signature, canonical
form), every artefact it lists must be attached with the listed size, SHA-256 and SM3, and every other
attached original of that capture must be listed. Attachments are matched by content, not by name, so
renaming an attachment changes nothing and swapping one is caught.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage
from reportlab.lib.units import mm
from reportlab.platypus import Image, PageBreak, Paragraph, Spacer

from evidence.capture_manifest import ManifestError, parse_manifest, verify_manifest
from evidence.errors import EvidenceError

__all__ = ["CapturePages", "capture_checks", "capture_story"]

STRIP_H_MM = 225.0  # one strip per A4 page: the frame height less the heading and footer


@dataclass(frozen=True)
class CapturePages:
    """What the capture pages show: the manifest as deposited and the screenshot it lists."""

    manifest: bytes
    screenshot: bytes | None = None


def _strips(png: bytes, width_pt: float, strip_h_pt: float) -> list[tuple[bytes, float]]:
    """The screenshot cut into PNG strips that fill `width_pt` and are at most `strip_h_pt` high."""
    img = PILImage.open(io.BytesIO(png))
    img.load()
    scale = width_pt / img.width
    step = max(1, int(strip_h_pt / scale))
    out = []
    for top in range(0, img.height, step):
        part = img.crop((0, top, img.width, min(img.height, top + step)))
        buf = io.BytesIO()
        part.save(buf, format="PNG", optimize=False)
        out.append((buf.getvalue(), part.height * scale))
    return out


def capture_story(c: CapturePages, st: Any, frame_w: float) -> list[Any]:
    """The flowables of the capture pages (styles and table helpers from evidence.packet)."""
    from evidence.packet import _grid, _kv_table, _mono_breakable, _t, group_hex

    m = parse_manifest(c.manifest)
    env = m.get("environment", {})
    story: list[Any] = [Paragraph("Web capture", st.h1)]
    story.append(_kv_table([
        ("URL", _mono_breakable(str(m.get("url")), 70)), ("Final URL", _mono_breakable(str(m.get("final_url")), 70)),
        ("Title", _t(m.get("title") or "-")), ("HTTP status", _t(m.get("status"))),
        ("Started", _t(m.get("started_at"))), ("Finished", _t(m.get("finished_at"))),
        ("Operator", _t(m.get("operator"))), ("Matter", _t(m.get("matter"))),
        ("Capture", _t(m.get("capture_id"))), ("Engine", _t(m.get("engine"))),
        ("Manifest key", _t(m.get("signature", {}).get("key_id"))),
    ], st))
    story.append(Paragraph("Capture environment", st.h2))
    rows = []
    for k in ("browser", "browser_version", "rendering_engine", "playwright", "user_agent", "viewport",
              "device_scale_factor", "locale", "timezone", "profile", "proxy", "network", "os", "hostname"):
        if k in env:
            v = env[k]
            rows.append((k.replace("_", " "), _t(f"{v['width']} x {v['height']}" if k == "viewport" else v)))
    clock = env.get("clock_offset")
    if isinstance(clock, list):
        for entry in clock:
            rows.append((f"clock at {entry.get('moment')}", _t(
                f"offset {entry['offset_ms']} ms against {entry['tsa']} (genTime {entry['tsa_gen_time']}, "
                f"round trip {entry['round_trip_ms']} ms)" if "offset_ms" in entry else entry.get("error"))))
    elif clock:
        rows.append(("clock", _t(clock)))
    policy = m.get("policy", {})
    rows.append(("fetch policy", _t(", ".join(f"{k}: {v}" for k, v in policy.items()))))
    story.append(_kv_table(rows, st))
    story.append(Paragraph("Artefacts (each deposited in this matter and attached to this packet)", st.h2))
    data = [[Paragraph(h, st.label) for h in ("Artefact", "Bytes", "SHA-256 / SM3")]]
    for a in m.get("artefacts", []):
        data.append([Paragraph(_t(a["name"]), st.cell), Paragraph(_t(a["size"]), st.cell),
                     Paragraph(_t(group_hex(a["sha256"])) + "<br/>" + _t(group_hex(a["sm3"])), st.cell_mono)])
    story.append(_grid(data, [38 * mm, 18 * mm, frame_w - 56 * mm]))
    refused = m.get("refused", [])
    story.append(Paragraph(f"Requests: {len(m.get('requests', []))}; refused by the guard: {len(refused)}",
                           st.h2))
    for r in refused[:50]:
        story.append(Paragraph(_mono_breakable(f"{r['url']} -- {r['reason']}", 90), st.mono))
    addrs = m.get("resolved_addresses", {})
    if addrs:
        story.append(Paragraph(_t("Resolved addresses: " + "; ".join(f"{h} -> {', '.join(ips)}"
                                                                   for h, ips in addrs.items())), st.small))
    if c.screenshot:
        for i, (strip, h) in enumerate(_strips(c.screenshot, frame_w, STRIP_H_MM * mm)):
            story.append(PageBreak())
            story.append(Paragraph(_t(f"Screenshot, part {i + 1} (full page, as rendered)"), st.small))
            story.append(Spacer(1, 2 * mm))
            story.append(Image(io.BytesIO(strip), width=frame_w, height=h))
    story.append(PageBreak())
    return story


def capture_checks(originals: Mapping[str, bytes]) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) for each capture manifest among `originals` (attachment name -> bytes)."""
    out: list[tuple[str, bool, str]] = []
    by_digest = {hashlib.sha256(d).hexdigest(): (n, d) for n, d in originals.items()}
    for name, data in originals.items():
        try:
            m = parse_manifest(data)
        except EvidenceError:
            continue
        try:
            verify_manifest(data)
            attached: dict[str, bytes] = {}
            for a in m["artefacts"]:
                hit = by_digest.get(str(a.get("sha256")))
                if hit is None:
                    raise ManifestError(f"artefact {a.get('name')}: not attached (no attachment has its SHA-256)")
                attached[str(a["name"])] = hit[1]
            verify_manifest(data, attached)  # size and SM3 as well
            listed = {str(a["sha256"]) for a in m["artefacts"]}
            capture = str(m.get("capture_id"))
            stray = [n for n, d in originals.items() if n != name and capture in n
                     and hashlib.sha256(d).hexdigest() not in listed]
            if stray:
                raise ManifestError(f"attachment {stray[0]}: not listed in the capture's manifest")
            out.append((name, True, f"capture {capture}: signature valid, {len(attached)} artefacts attached "
                                    "with the listed SHA-256, SM3 and size"))
        except ManifestError as e:
            out.append((name, False, e.diagnostics()))
    return out
