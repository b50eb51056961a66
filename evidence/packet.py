"""The evidence packet (SPEC.md "The packet PDF"): proof bundles and deposit facts -> an unsigned PDF.

Pure layout: reportlab builds the pages, pyHanko's PDF writer adds the attachments as embedded files in
one incremental update. No network, no database, no keys: sealing (the PDF signature, PAdES) happens in
`depository.packets`, so the signature covers the pages *and* the attachments.

Pages, per deposit: a certificate page (facts, both digests, the time as bounded by the TSA token and
the witnesses, where the leaf sits in the log) with a QR code to the public verification URL; the
witnesses and their quorum; the Merkle inclusion path, drawn and listed; the checkpoint text. Then,
once per packet: how to verify without us, a declaration for a qualified person (FRE 902(13)/(14)
style) and the mapping to the Chinese SPC rules, stating what is proven and what is not.

Attachments (names in `attachment_names`): proof.json, tlog-proof.txt, checkpoint.txt,
checkpoint-body.txt, timestamp.tsr and tsa-chain.pem when a token exists, the original file when the
depositor stored it, and signer-chain.pem once per packet. In a matter packet (several deposits) each
deposit's names carry the prefix `<deposit id>.` so one PDF holds every deposit's proof.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import qrcode
from pyhanko.pdf_utils import embed
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from evidence import fonts
from evidence.bundle import ProofBundle
from evidence.capture_packet import CapturePages, capture_story
from evidence.checkpoint import SignedCheckpoint
from evidence.errors import EvidenceError, FormatError
from evidence.fonts import packet_fonts
from evidence.leaf import LeafData
from evidence.merkle import SHA256
from evidence.readiness import (  # noqa: F401  (re-exported: verify and tests import them from here)
    Readiness,
    WitnessRow,
    common_name,
    packet_readiness,
    parse_policy,
    quorum_text,
    readiness,
    witness_rows,
)
from evidence.timestamp import TokenInfo, parse_token

#: Attachment base names (SPEC.md: proof.json is "an embedded file of that name").
PROOF_JSON = "proof.json"
TLOG_PROOF = "tlog-proof.txt"
CHECKPOINT = "checkpoint.txt"
CHECKPOINT_BODY = "checkpoint-body.txt"
TIMESTAMP = "timestamp.tsr"
TSA_CHAIN = "tsa-chain.pem"
SIGNER_CHAIN = "signer-chain.pem"
ORIGINAL_PREFIX = "original-"

MONO = fonts.MONO
BODY, BODY_BOLD = fonts.SANS, fonts.SANS_BOLD
PAGE_W, PAGE_H = A4
MARGIN = 18 * mm
FRAME_W = PAGE_W - 2 * MARGIN

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DepositFacts:
    """What the depository knows about a deposit beyond the leaf: names and the declared file type."""

    deposit_id: str
    depositor_id: str
    depositor_name: str
    kind: str
    filename: str | None
    size: int | None
    content_type: str | None
    sha256: str
    sm3: str
    received: datetime


@dataclass(frozen=True)
class PacketEntry:
    """One deposit of a packet: its facts, its proof bundle and, if stored, the original content."""

    facts: DepositFacts
    bundle: ProofBundle
    original: bytes | None = None


@dataclass(frozen=True)
class Comparison:
    """What an infringement packet sets side by side: a registered work and the later capture of a copy.

    Both deposits are entries of the same packet (with their own certificate and proof pages); this
    names them and the match that linked them, for the comparison page placed first.
    """

    alert_id: str
    work_deposit_id: str
    capture_deposit_id: str
    page_url: str
    matched_url: str
    method: str
    score: float
    captured_at: datetime | None = None


@dataclass(frozen=True)
class PacketInput:
    """Everything the layout needs; `entries` has one item for a packet, several for a matter packet."""

    entries: Sequence[PacketEntry]
    public_base_url: str
    service_name: str
    generated_at: datetime
    signer_chain_pem: bytes | None = None
    matter: str | None = None
    comparison: Comparison | None = None
    capture: CapturePages | None = None  # a web capture's pages (evidence.capture_packet), placed first


# --- names and small pure helpers --------------------------------------------------------------------


def entry_prefix(deposit_id: str, matter: bool) -> str:
    """Attachment name prefix of one deposit: empty in a single packet, `<id>.` in a matter packet."""
    return f"{deposit_id}." if matter else ""


def original_name(prefix: str, filename: str | None) -> str:
    """Attachment name of the stored original: `[prefix]original-<sanitised file name>`."""
    stem, dot, ext = (filename or "content.bin").rpartition(".")
    if not dot:
        stem, ext = ext, "bin"
    stem = _SAFE_NAME.sub("_", stem).strip("._") or "content"
    ext = _SAFE_NAME.sub("", ext)[:16] or "bin"
    return f"{prefix}{ORIGINAL_PREFIX}{stem[:100]}.{ext}"


def verification_url(base: str, deposit_id: str, sha256_hex: str) -> str:
    """The public verification URL printed and encoded in the QR code."""
    return f"{base.rstrip('/')}/verify?" + urlencode({"deposit": deposit_id, "sha256": sha256_hex})


def certificate_number(leaf_data: bytes) -> str:
    """A certificate number anyone can recompute: `EP-` and 16 hex digits of SHA-256(leaf data)."""
    h = hashlib.sha256(leaf_data).hexdigest()[:16].upper()
    return f"EP-{h[:4]}-{h[4:8]}-{h[8:12]}-{h[12:]}"


def group_hex(hex_text: str, size: int = 8) -> str:
    """`ab12cd34 ef56...`: hex split into groups, so a 64-digit hash wraps at group boundaries."""
    return " ".join(hex_text[i : i + size] for i in range(0, len(hex_text), size))


def checkpoint_body(note_text: str) -> bytes:
    """The exact bytes the RFC 3161 imprint covers: the note text, final newline included."""
    return SignedCheckpoint.from_text(note_text).body.encode()


def proof_json_bytes(bundle: ProofBundle) -> bytes:
    """proof.json as attached: the bundle's JSON, pretty-printed, UTF-8."""
    return (json.dumps(bundle.to_json(), indent=2, ensure_ascii=False) + "\n").encode()


def entry_attachments(entry: PacketEntry, prefix: str) -> dict[str, bytes]:
    """The embedded files of one deposit, by attachment name."""
    b = entry.bundle
    files = {
        prefix + PROOF_JSON: proof_json_bytes(b),
        prefix + TLOG_PROOF: b.tlog_proof.encode(),
        prefix + CHECKPOINT: b.checkpoint.encode(),
        prefix + CHECKPOINT_BODY: checkpoint_body(b.checkpoint),
    }
    if b.timestamp_token is not None:
        files[prefix + TIMESTAMP] = b.timestamp_token
    if b.timestamp_ca_pem:
        files[prefix + TSA_CHAIN] = b.timestamp_ca_pem.encode()
    if entry.original is not None:
        files[original_name(prefix, entry.facts.filename)] = entry.original
    return files


@dataclass(frozen=True)
class PathStep:
    """One level of an inclusion path: the sibling hash, which side it sits on, and the parent."""

    sibling: bytes
    sibling_left: bool
    parent: bytes


def inclusion_path(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> list[PathStep]:
    """The nodes an RFC 9162 §2.1.3.2 inclusion check visits, for drawing (verification is `merkle`).

    Requires 0 <= index < size and a proof of the right length; the last parent is the computed root.
    """
    if not 0 <= index < size:
        raise FormatError(f"index {index} is not in a tree of size {size}")
    steps = []
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if fn & 1 or fn == sn:
            r = SHA256.hash_children(p, r)
            steps.append(PathStep(p, True, r))
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = SHA256.hash_children(r, p)
            steps.append(PathStep(p, False, r))
        fn >>= 1
        sn >>= 1
    return steps


def fmt_time(t: datetime | None) -> str:
    if t is None:
        return "-"
    t = t.astimezone(UTC)
    ms = f".{t.microsecond // 1000:03d}" if t.microsecond else ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + ms + " UTC"


# --- styles ----------------------------------------------------------------------------------------


def cjk_font() -> str:
    """Register the packet's embedded fonts (evidence.fonts; FontError if missing); the Chinese font's name."""
    packet_fonts()
    return fonts.CJK


@dataclass(frozen=True)
class _Styles:
    h1: ParagraphStyle
    h2: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    mono: ParagraphStyle
    cell: ParagraphStyle
    cell_mono: ParagraphStyle
    label: ParagraphStyle


def _styles() -> _Styles:
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=BODY, fontSize=9.5, leading=12.5)
    return _Styles(
        h1=ParagraphStyle("h1", parent=base["Title"], fontName=BODY_BOLD, fontSize=17, leading=21,
                          spaceAfter=4, alignment=TA_CENTER),
        h2=ParagraphStyle("h2", parent=base["Heading2"], fontName=BODY_BOLD, fontSize=12.5,
                          leading=15, spaceBefore=8, spaceAfter=4),
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=8, leading=10,
                             textColor=colors.HexColor("#444444")),
        mono=ParagraphStyle("mono", parent=body, fontName=MONO, fontSize=7.6, leading=9.4),
        cell=ParagraphStyle("cell", parent=body, fontSize=8.6, leading=10.8),
        cell_mono=ParagraphStyle("cellmono", parent=body, fontName=MONO, fontSize=8, leading=10),
        label=ParagraphStyle("label", parent=body, fontName=BODY_BOLD, fontSize=8.6, leading=10.8),
    )


def _needs_cjk(ch: str) -> bool:
    """True for characters the Latin font has no glyph for (Chinese, mostly): they switch to the CJK font."""
    return not packet_fonts().has_glyph(ch)


def _cjk_runs(s: str) -> str:
    """Wrap runs of characters the Latin font lacks in the CJK font (input already escaped)."""
    font = cjk_font()
    out: list[str] = []
    buf: list[str] = []
    cjk = False
    for ch in s:
        flag = _needs_cjk(ch)
        if flag != cjk and buf:
            out.append(f'<font name="{font}">{"".join(buf)}</font>' if cjk else "".join(buf))
            buf = []
        cjk = flag
        buf.append(ch)
    if buf:
        out.append(f'<font name="{font}">{"".join(buf)}</font>' if cjk else "".join(buf))
    return "".join(out)


def _t(text: object) -> str:
    """Escape for a Paragraph; Chinese (and other non-WinAnsi) runs switch to the CJK font so they render."""
    return _cjk_runs(escape(str(text)))


def _mono_breakable(text: str, width: int = 64) -> str:
    """Monospace text with hard breaks every `width` characters, so base64 and long lines wrap."""
    lines = []
    for line in text.split("\n"):
        chunks = [line[i : i + width] for i in range(0, len(line), width)] or [""]
        lines.extend(chunks)
    return "<br/>".join(_cjk_runs(escape(c).replace(" ", "&nbsp;")) for c in lines)


def _kv_table(rows: list[tuple[str, Any]], st: _Styles, label_w: float = 42 * mm) -> Table:
    data = [[Paragraph(_t(k), st.label), v if not isinstance(v, str) else Paragraph(v, st.cell)]
            for k, v in rows]
    t = Table(data, colWidths=[label_w, FRAME_W - label_w])
    t.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), BODY),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#EEF2F7")),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
    ]))
    return t


def _grid(data: list[list[Any]], widths: list[float]) -> Table:
    t = Table(data, colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), BODY),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDE4EE")),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]))
    return t


def _qr(url: str, size: float) -> Drawing:
    """The QR code as vector squares (qrcode computes the matrix; no raster image, no Pillow)."""
    q = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M)
    q.add_data(url)
    q.make(fit=True)
    matrix = q.get_matrix()
    n = len(matrix)
    cell = size / n
    d = Drawing(size, size, initialFontName=BODY)  # else renderPDF sets (non-embedded) Helvetica
    for y, row in enumerate(matrix):
        for x, on in enumerate(row):
            if on:
                d.add(Rect(x * cell, size - (y + 1) * cell, cell, cell, fillColor=colors.black,
                           strokeColor=None, strokeWidth=0))
    return d


def _tree_drawing(leaf_hash: bytes, steps: list[PathStep], root: bytes, index: int, size: int) -> Drawing:
    """The inclusion path as a small tree: leaf at the bottom, root at the top, siblings beside."""
    levels = len(steps)
    avail_h = 150 * mm
    row_h = max(14.0, min(30.0, avail_h / (levels + 1)))
    box_w, box_h = 62.0, min(12.0, row_h - 3)
    h = row_h * (levels + 1) + 10
    d = Drawing(FRAME_W, h, initialFontName=BODY)
    cx = FRAME_W / 2 - box_w / 2

    def box(x: float, y: float, label: str, fill: str) -> None:
        d.add(Rect(x, y, box_w, box_h, fillColor=colors.HexColor(fill), strokeColor=colors.black,
                   strokeWidth=0.5))
        d.add(String(x + box_w / 2, y + box_h / 2 - 2.6, label, fontName=MONO, fontSize=6.6,
                     textAnchor="middle"))

    y = 4.0
    box(cx, y, leaf_hash.hex()[:8], "#FFF3C4")
    d.add(String(cx + box_w + 6, y + 2, f"leaf {index} (your deposit)", fontName=BODY, fontSize=6.6))
    for i, step in enumerate(steps):
        ny = y + row_h
        sx = cx - box_w - 26 if step.sibling_left else cx + box_w + 26
        sy = y
        box(sx, sy, step.sibling.hex()[:8], "#E4ECF7")
        is_root = i == levels - 1
        box(cx, ny, step.parent.hex()[:8], "#D8F0D8" if is_root else "#FFFFFF")
        for fx in (cx + box_w / 2, sx + box_w / 2):
            d.add(Line(fx, sy + box_h, cx + box_w / 2, ny, strokeWidth=0.5))
        y = ny
    if not steps:
        d.add(String(cx + box_w + 6, y + box_h - 1, "= root (single-leaf tree)", fontName=BODY,
                     fontSize=6.6))
    else:
        d.add(String(cx + box_w + 6, y + box_h / 2 - 2.5, f"root of tree size {size}", fontName=BODY,
                     fontSize=6.6))
    del root
    return d


# --- pages -------------------------------------------------------------------------------------------


def _token_info(bundle: ProofBundle) -> TokenInfo | None:
    if bundle.timestamp_token is None:
        return None
    try:
        return parse_token(bundle.timestamp_token)
    except EvidenceError:
        return None


def meta_text(v: Any) -> str:
    """A metadata value as a reader writes it: parties as names ("李伟 (tenant); Acme Ltd."), not JSON."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, list):
        return "; ".join(meta_text(x) for x in v)
    if isinstance(v, dict):
        if isinstance(v.get("name"), str):
            rest = {k: x for k, x in v.items() if k != "name" and x not in (None, "")}
            role = rest.pop("role", None)
            extra = ", ".join(f"{k} {meta_text(x)}" for k, x in rest.items())
            details = ", ".join(str(d) for d in (meta_text(role) if role is not None else "", extra) if d)
            return v["name"] + (f" ({details})" if details else "")
        return ", ".join(f"{k}: {meta_text(x)}" for k, x in v.items())
    return json.dumps(v, ensure_ascii=False)


def _certificate(entry: PacketEntry, p: PacketInput, st: _Styles) -> list[Any]:
    f, b = entry.facts, entry.bundle
    leaf = LeafData.from_bytes(b.leaf_data)
    cp = SignedCheckpoint.from_text(b.checkpoint).checkpoint
    token = _token_info(b)
    rows, quorum = witness_rows(b, parse_policy(b.witness_policy))
    url = verification_url(p.public_base_url, f.deposit_id, f.sha256)
    story: list[Any] = [
        Paragraph("Electronic Evidence Deposit Certificate", st.h1),
        Paragraph(_t(f"电子数据存证证书 · certificate {certificate_number(b.leaf_data)}"),
                  ParagraphStyle("sub", parent=st.body, alignment=TA_CENTER)),
        Spacer(1, 5),
    ]
    meta = b.metadata
    meta_lines = [f"<b>{_t(k)}</b>: {_t(meta_text(v))}" for k, v in list(meta.items())[:12]]
    if len(meta) > 12:
        meta_lines.append(f"... {len(meta) - 12} more fields in proof.json")
    size = "hash-only deposit (content not sent)" if f.size is None else f"{f.size:,} bytes"
    facts = [
        ("Certificate number", _t(certificate_number(b.leaf_data))),
        ("Deposit ID", f'<font name="{MONO}">{_t(f.deposit_id)}</font>'),
        ("Depositor", f"{_t(f.depositor_name)} ({_t(f.depositor_id)})"),
        ("Kind", _t(f.kind)),
        ("Metadata", "<br/>".join(meta_lines) or "(none)"),
        ("File", f"{_t(f.filename or '(no file name)')}<br/>{size}; type {_t(f.content_type or 'unknown')}"),
        ("SHA-256", f'<font name="{MONO}">{group_hex(leaf.sha256.hex())}</font>'),
        ("SM3", f'<font name="{MONO}">{group_hex(leaf.sm3.hex())}</font>'),
        ("Received (log)", _t(fmt_time(leaf.received)) + " — recorded in the leaf by the depository"),
    ]
    if token is not None:
        tsa = common_name(token.tsa_name or "") or "(unnamed)"
        facts.append(("Existed no later than (TSA)",
                      f"{_t(fmt_time(token.gen_time))}<br/>TSA: {_t(tsa)}<br/>"
                      f"serial {token.serial}; policy {_t(token.policy_oid)}"))
    else:
        facts.append(("Existed no later than (TSA)", "no RFC 3161 timestamp token in this proof"))
    cosig_times = [r.time for r in rows if r.verified and r.time is not None]
    if cosig_times:
        facts.append(("Witnessed no later than",
                      f"{_t(fmt_time(min(cosig_times)))} (earliest of {len(cosig_times)} verified "
                      f"cosignature(s); quorum {'met' if quorum else 'NOT met'})"))
    else:
        facts.append(("Witnessed no later than", "no verified witness cosignature in this proof"))
    facts += [
        ("Log origin", _t(cp.origin)),
        ("Leaf index / tree size", f"{b.leaf_index:,} of {cp.size:,}"),
        ("Tree root (SHA-256)", f'<font name="{MONO}">{group_hex(cp.root_hash.hex())}</font>'),
    ]
    story.append(_kv_table(facts, st))
    story.append(Spacer(1, 6))
    qr = Table([[_qr(url, 30 * mm), Paragraph(
        "Scan to check this deposit at the public verification page:<br/>"
        f'<font name="{MONO}" size="7">{_mono_breakable(url, 70)}</font><br/>'
        "The page is a convenience; the checks in this packet need no access to us (see "
        "<i>How to verify without us</i>).", st.small)]], colWidths=[34 * mm, FRAME_W - 34 * mm])
    qr.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), BODY), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story.append(KeepTogether([qr]))
    story.append(PageBreak())
    return story


def _witness_and_path(entry: PacketEntry, st: _Styles) -> list[Any]:
    b = entry.bundle
    policy = parse_policy(b.witness_policy)
    rows, quorum = witness_rows(b, policy)
    story: list[Any] = [Paragraph(f"Witnesses — deposit {_t(entry.facts.deposit_id)}", st.h2)]
    if policy is None:
        story.append(Paragraph(
            "This proof names no witness policy: no independent witness cosigned the checkpoint. The log's "
            "own signatures and the inclusion proof still show the deposit is in the log.", st.body))
    else:
        data: list[list[Any]] = [[Paragraph(h, st.label) for h in
                                  ("Witness", "Key ID", "Cosignature time", "Verified")]]
        for r in rows:
            data.append([Paragraph(_t(r.name), st.cell), Paragraph(r.key_id, st.cell_mono),
                         Paragraph(_t(fmt_time(r.time)), st.cell),
                         Paragraph("yes" if r.verified else _t(f"no — {r.note}"), st.cell)])
        story.append(_grid(data, [60 * mm, 22 * mm, 45 * mm, FRAME_W - 127 * mm]))
        story.append(Spacer(1, 3))
        story.append(Paragraph(
            f"Quorum required by the policy: <b>{_t(quorum_text(policy))}</b> — "
            f"{'<b>met</b>' if quorum else '<b>not met</b>'}.", st.body))
    leaf_hash = SHA256.hash_leaf(b.leaf_data)
    steps = inclusion_path(b.leaf_index, b.tree_size, leaf_hash, b.inclusion_proof)
    root = steps[-1].parent if steps else leaf_hash
    story.append(Paragraph("Merkle inclusion path", st.h2))
    story.append(Paragraph(
        "The leaf hash is SHA-256(0x00 || leaf data). Each step combines it with the sibling shown beside it "
        "as SHA-256(0x01 || left || right) (RFC 6962). If the last value equals the root in the "
        "checkpoint, the "
        "deposit is in the log as of that checkpoint. Boxes show the first 8 hex digits; the full values "
        "follow.",
        st.body))
    story.append(_tree_drawing(leaf_hash, steps, root, b.leaf_index, b.tree_size))
    data = [[Paragraph(h, st.label) for h in ("Step", "Sibling (side)", "Result")]]
    data.append([Paragraph("leaf", st.cell), Paragraph("—", st.cell),
                 Paragraph(group_hex(leaf_hash.hex()), st.cell_mono)])
    for i, s in enumerate(steps, 1):
        data.append([Paragraph(str(i), st.cell),
                     Paragraph(group_hex(s.sibling.hex()) + (" (left)" if s.sibling_left else " (right)"),
                               st.cell_mono),
                     Paragraph(group_hex(s.parent.hex()), st.cell_mono)])
    story.append(_grid(data, [12 * mm, (FRAME_W - 12 * mm) / 2, (FRAME_W - 12 * mm) / 2]))
    story.append(Paragraph("Checkpoint (signed note, with cosignatures)", st.h2))
    story.append(Paragraph(
        "The log signs the first lines (origin, tree size, root) with Ed25519 and SM2; witnesses add "
        "cosignature lines. checkpoint-body.txt holds exactly the signed lines; the timestamp token covers "
        "their SHA-256.", st.body))
    story.append(Paragraph(_mono_breakable(b.checkpoint.rstrip("\n"), 80), st.mono))
    story.append(PageBreak())
    return story


def _how_to_verify(p: PacketInput, st: _Styles, matter: bool) -> list[Any]:
    pre = "&lt;deposit id&gt;." if matter else ""
    cmd = ParagraphStyle("cmd", parent=st.mono, backColor=colors.HexColor("#F3F3F3"), borderPadding=3,
                         spaceBefore=3, spaceAfter=6)
    story: list[Any] = [
        Paragraph("How to verify without us", st.h2),
        Paragraph(
            "Nothing below contacts the depository. Save the attachments of this PDF (any PDF reader's "
            "attachment panel, or <font name='EvidenceMono'>pdfdetach -saveall packet.pdf</font>). Obtain the "
            "trust "
            "files independently of this packet — from the log operator's publication, a court registry or "
            "the "
            "witnesses — into a directory <font name='EvidenceMono'>trust/</font>: log.vkey, log-sm2.pem, "
            "witness-policy.txt, tsa-ca.pem (the TSA's root) and packet-ca.pem (the packet signer's root).",
            st.body),
        Paragraph("1. The timestamp covers the checkpoint (OpenSSL):", st.body),
        Paragraph(_mono_breakable(
            f"openssl ts -verify -data {pre.replace('&lt;', '<').replace('&gt;', '>')}checkpoint-body.txt "
            f"-in {pre.replace('&lt;', '<').replace('&gt;', '>')}timestamp.tsr -token_in -CAfile tsa-ca.pem",
            104), cmd),
        Paragraph(
            "It must print <font name='EvidenceMono'>Verification: OK</font>. tsa-ca.pem is trust/tsa-ca.pem; the "
            "chain as the TSA sent it is also attached as tsa-chain.pem (its last certificate is the root).",
            st.small),
        Paragraph("2. The PDF signature covers this whole file (poppler):", st.body),
        Paragraph("pdfsig packet.pdf", cmd),
        Paragraph(
            "Look for <i>Signature Validation: Signature is Valid.</i> and <i>Total document signed</i> on "
            "the "
            "last signature or document timestamp.", st.small),
        Paragraph("3. Every check at once (our open-source verifier, offline):", st.body),
        Paragraph("depository verify packet.pdf --trust trust/ [--file ORIGINAL]", cmd),
        Paragraph(
            "It checks the PDF signature, each attachment against the others, the leaf against the file's "
            "SHA-256 and SM3, the inclusion proof against the checkpoint root, the log's Ed25519 and SM2 "
            "signatures, the witness cosignatures and quorum, and the token — and prints one line per check.",
            st.small),
        Paragraph("4. By hand, with any tool:", st.body),
        Paragraph(
            "SHA-256 and SM3 of the original (<font name='EvidenceMono'>openssl dgst -sha256 FILE</font>, "
            "<font name='EvidenceMono'>openssl dgst -sm3 FILE</font>) equal the sha256 and sm3 lines of the leaf "
            "(base64 'leaf_data' in proof.json). The 'meta' line is SHA-256 of the RFC 8785 canonical JSON "
            "of "
            "proof.json's 'metadata'. tlog-proof.txt is a C2SP tlog-proof@v1; Go's "
            "golang.org/x/mod/sumdb/{note,tlog} check the checkpoint and the inclusion proof.", st.body),
        PageBreak(),
    ]
    return story


def _evidence_sentences(rs: Sequence[Readiness]) -> tuple[str, str]:
    """(what the system did for the records in this packet, why the record is reliable): only what the
    attachments prove, never a witness or a timestamp that is not there."""
    stamped = all(r.timestamped for r in rs)
    witnessed = all(r.quorum_met and r.witnesses for r in rs)
    names = sorted({w for r in rs for w in r.witnesses})
    tsas = sorted({r.tsa_name for r in rs if r.tsa_name})
    parts = []
    if witnessed:
        parts.append(f"The checkpoint{'s' if len(rs) > 1 else ''} in this packet "
                     f"{'are' if len(rs) > 1 else 'is'} cosigned by the independent witnesses "
                     f"{_t(', '.join(names))}, meeting the witness policy's quorum")
    elif any(r.witnesses for r in rs):
        parts.append("Some witnesses have cosigned, but the witness quorum is not met for every checkpoint in "
                     "this packet")
    else:
        parts.append("No independent witness has cosigned the checkpoint in this packet")
    if stamped:
        parts.append("each checkpoint carries an RFC 3161 timestamp token"
                     + (f" from {_t(', '.join(tsas))}" if tsas else ""))
    else:
        parts.append("the packet carries no RFC 3161 timestamp for "
                     + ("any checkpoint" if not any(r.timestamped for r in rs) else "every checkpoint")
                     + ", so the receipt time is the system's own record")
    system = "; ".join(parts) + "."
    if witnessed or stamped:
        by = (f"cosigned by witnesses{' and timestamped by a time-stamping authority' if stamped else ''}"
              if witnessed else "timestamped by a time-stamping authority")
        reliable = ("A record cannot be altered without changing its hashes, which would break the inclusion "
                    f"proof against a checkpoint already signed by the system and {by}, parties other than "
                    "the operator.")
    else:
        reliable = ("A record cannot be altered without changing its hashes, which would break the inclusion "
                    "proof against a checkpoint already signed by the system (Ed25519 and SM2). This packet "
                    "carries no cosignature or timestamp by a party other than the operator.")
    return system, reliable


def _declaration(p: PacketInput, st: _Styles) -> list[Any]:
    rs = packet_readiness([e.bundle for e in p.entries])
    system_here, reliable = _evidence_sentences(rs)
    story: list[Any] = [
        Paragraph("Declaration of a qualified person", st.h2),
        Paragraph("(in the form of a certification under Federal Rules of Evidence 902(13) and 902(14))",
                  st.small),
        Paragraph(
            f"I, ______________________________, declare that I am employed by or act for the operator of "
            f"{_t(p.service_name)} (the \"system\"), that I am familiar with how it makes and keeps "
            f"records, and "
            "that I am qualified to certify the following.", st.body),
        Paragraph(
            "<b>The system.</b> The system is an electronic evidence depository. When a depositor submits "
            "a file "
            "(or its hashes), the system computes SHA-256 (FIPS 180-4) and SM3 (GB/T 32905-2016) of the "
            "content "
            "as received, writes a leaf record holding both values, the receipt time and a salted "
            "commitment to "
            "the metadata into an append-only Merkle tree log (RFC 6962), and publishes signed checkpoints "
            "of "
            "that log (Ed25519 and SM2 signatures). " + system_here + " These steps are automatic and happen "
            "in the regular course of the system's operation; the records are made at or near the time of "
            "receipt.", st.body),
        Paragraph(
            "<b>The process is reliable.</b> " + reliable + " The packet is itself digitally signed (PAdES) "
            "so changes to it are detectable.", st.body),
        Paragraph("<b>Hash algorithms and values (FRE 902(14): identification by hash value).</b>", st.body),
    ]
    data = [[Paragraph(h, st.label) for h in ("Deposit", "SHA-256", "SM3")]]
    for e in p.entries:
        data.append([Paragraph(_t(e.facts.deposit_id), st.cell_mono),
                     Paragraph(group_hex(e.facts.sha256), st.cell_mono),
                     Paragraph(group_hex(e.facts.sm3), st.cell_mono)])
    story.append(_grid(data, [44 * mm, (FRAME_W - 44 * mm) / 2, (FRAME_W - 44 * mm) / 2]))
    story += [
        Spacer(1, 6),
        Paragraph(
            "A copy of a file whose SHA-256 and SM3 equal the values above is identical, bit for bit, to the "
            "content the depositor submitted. I declare under penalty of perjury that the foregoing is "
            "true and "
            "correct.", st.body),
        Spacer(1, 14),
        Paragraph("Signature: ______________________________ &nbsp;&nbsp; Date: ________________", st.body),
        Spacer(1, 6),
        Paragraph("Name, title: ______________________________", st.body),
        PageBreak(),
    ]
    return story


def _spc_mapping(st: _Styles) -> list[Any]:
    s = st
    rows = [
        ("2018 SPC Provisions on Internet Courts, Art. 11",
         _t("电子数据的真实性可通过电子签名、可信时间戳、哈希值校验、区块链等证据收集、固定和防篡改的技术手段"
            "或者通过电子取证存证平台认证予以证明。") +
         "<br/>Authenticity of electronic data may be proven by electronic signatures, trusted timestamps, "
         "hash "
         "verification and tamper-evident technical means, or by a certified evidence-deposit platform.",
         "Hash verification (SHA-256 and SM3); trusted timestamp (RFC 3161 token over the checkpoint); "
         "tamper-evident log (Merkle tree, signed and witnessed checkpoints); electronic signature (PAdES "
         "signature on this packet)."),
        ("2021 SPC Online Litigation Rules, Art. 16",
         _t("当事人提交的电子数据，通过区块链技术存储，并经技术核验一致的，"
            "人民法院可以认定该电子数据上链后未经篡改。") +
         "<br/>Data stored with tamper-evident ledger technology that checks out may be found unaltered "
         "since "
         "it was recorded.",
         "The inclusion proof and the cosigned checkpoint show the record has not changed since deposit: "
         "integrity since deposit is proven."),
        ("Art. 17",
         "A party may object with reasons; the court may then require the depositor to explain or "
         "supplement.",
         "All checks can be rerun by the other side without our cooperation (How to verify without us)."),
        ("Art. 18",
         "Where data was generated before it was stored, the court examines the source and the process.",
         "<b>Not proven by this packet:</b> provenance before deposit — who made the file, when, and "
         "whether it "
         "was already altered before it reached us. Those need other evidence."),
        ("Art. 19",
         "The court may commission an expert review of the storage platform's technology.",
         "The formats are public (C2SP tlog-checkpoint, tlog-cosignature, tlog-proof; RFC 6962; RFC 3161; "
         "PAdES) and the verifier is open source."),
    ]
    data = [[Paragraph(h, s.label) for h in ("Rule", "What it says (summary)", "What this packet shows")]]
    data += [[Paragraph(a, s.cell), Paragraph(b, s.cell), Paragraph(c, s.cell)] for a, b, c in rows]
    return [
        Paragraph(_t("Mapping to the Chinese SPC rules · 最高人民法院规定对照"), s.h2),
        _grid(data, [36 * mm, (FRAME_W - 36 * mm) / 2, (FRAME_W - 36 * mm) / 2]),
        Spacer(1, 6),
        Paragraph(
            "<b>Proven:</b> (1) integrity since deposit — the file with these hashes is the one deposited; "
            "(2) time — it existed no later than the TSA's genTime and the witnesses' cosignature times; "
            "(3) independent witnesses — parties other than the operator saw the same log state. "
            "<b>Not proven:</b> provenance before deposit, authorship, or the truth of the file's content.",
            s.body),
    ]


def proven_times(entry: PacketEntry) -> tuple[datetime, datetime | None, datetime | None]:
    """(received by the log, TSA genTime, earliest verified cosignature time) of one entry's proof."""
    b = entry.bundle
    token = _token_info(b)
    rows, _ = witness_rows(b, parse_policy(b.witness_policy))
    cosig = [r.time for r in rows if r.verified and r.time is not None]
    return LeafData.from_bytes(b.leaf_data).received, token.gen_time if token else None, min(cosig, default=None)


def fmt_duration(seconds: float) -> str:
    """'3.250 s', '4 h 5 min', '12 days 3 h': how much earlier the work was proven than the copy."""
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes = int(seconds // 60)
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    days, hours = divmod(minutes // 60, 24)
    return f"{days:,} days {hours} h"


def _comparison_page(p: PacketInput, st: _Styles) -> list[Any]:
    """Infringement packets: the work's earlier proven time beside the capture's later one."""
    c = p.comparison
    assert c is not None
    by_id = {e.facts.deposit_id: e for e in p.entries}
    work, capture = by_id.get(c.work_deposit_id), by_id.get(c.capture_deposit_id)
    if work is None or capture is None:
        raise FormatError("the comparison names deposits that are not in the packet")

    def column(e: PacketEntry) -> list[str]:
        received, tsa, witnessed = proven_times(e)
        meta = e.bundle.metadata
        what = meta.get("title") or meta.get("url") or e.facts.filename or "-"
        return [_t(e.facts.deposit_id), _t(e.facts.kind), _t(str(what)),
                group_hex(e.facts.sha256), _t(fmt_time(received)),
                _t(fmt_time(tsa)) if tsa else "no timestamp token yet",
                _t(fmt_time(witnessed)) if witnessed else "no verified cosignature"]

    labels = ["Deposit", "Kind", "Title / URL", "SHA-256", "Received by the log", "Existed no later than (TSA)",
              "Witnessed no later than"]
    wc, cc = column(work), column(capture)
    data = [[Paragraph("", st.label), Paragraph("Registered work (earlier)", st.label),
             Paragraph("Capture of the copy (later)", st.label)]]
    for i, label in enumerate(labels):
        style = st.cell_mono if label in ("Deposit", "SHA-256") else st.cell
        data.append([Paragraph(label, st.label), Paragraph(wc[i], style), Paragraph(cc[i], style)])
    w_received, w_tsa, _ = proven_times(work)
    work_bound = w_tsa or w_received
    captured = c.captured_at or proven_times(capture)[0]
    gap = captured - work_bound
    verdict = (f"The registered work was proven to exist by {fmt_time(work_bound)}, "
               f"{fmt_duration(gap.total_seconds())} before the copy was captured at {fmt_time(captured)}."
               if gap.total_seconds() > 0 else
               "The capture is not later than the work's proven time: this packet does not show priority.")
    return [
        Paragraph("Infringement evidence packet", st.h1),
        Paragraph(_t(f"Alert {c.alert_id}"), ParagraphStyle("al", parent=st.body, alignment=TA_CENTER)),
        Spacer(1, 6),
        _grid(data, [40 * mm, (FRAME_W - 40 * mm) / 2, (FRAME_W - 40 * mm) / 2]),
        Spacer(1, 8),
        _kv_table([
            ("Page", _t(c.page_url)),
            ("Matched resource", _t(c.matched_url)),
            ("Match", f"{_t(c.method)}, score {c.score:.4f} (perceptual fingerprint similarity, 1 = identical)"),
            ("Captured at", _t(fmt_time(c.captured_at)) if c.captured_at else "-"),
        ], st),
        Spacer(1, 6),
        Paragraph(f"<b>{_t(verdict)}</b>", st.body),
        Paragraph(
            "Both deposits follow with their own certificate, witnesses and inclusion proof; their "
            "proof.json files are attached as '&lt;deposit id&gt;.proof.json'. The capture's original is a "
            "WARC file (ISO 28500) holding the request and response headers, the page, every matched image, "
            "the fetch time, the resolved IP address and, over https, the server's certificate. A "
            "perceptual match says the two look or read alike; whether that is an infringement is for the "
            "reader to judge.", st.small),
        PageBreak(),
    ]


# --- assembly --------------------------------------------------------------------------------------


WATERMARK = "PRELIMINARY — NOT COURT-READY"


def status_line(rs: Sequence[Readiness]) -> str:
    """The footer's statement of what the packet contains (every page)."""
    if all(r.court_ready for r in rs):
        return "Court-ready: witnessed to quorum and timestamped"
    missing = []
    if not all(r.timestamped for r in rs):
        missing.append("no RFC 3161 timestamp")
    if not all(r.quorum_met and r.witnesses for r in rs):
        missing.append("no witness quorum")
    return "PRELIMINARY (" + ", ".join(missing) + ")"


def _footer(p: PacketInput, rs: Sequence[Readiness]) -> Any:
    preliminary = not all(r.court_ready for r in rs)

    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        if preliminary:
            canvas.saveState()
            canvas.setFillColor(colors.Color(0.75, 0.1, 0.1, alpha=0.16))
            canvas.setFont(BODY_BOLD, 34)
            canvas.translate(PAGE_W / 2, PAGE_H / 2)
            canvas.rotate(52)
            canvas.drawCentredString(0, 0, WATERMARK)
            canvas.restoreState()
        canvas.setFont(BODY, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        label = f"Evidence packet · {status_line(rs)} · {p.service_name} · generated {fmt_time(p.generated_at)}"
        canvas.drawString(MARGIN, 10 * mm, label[:150])
        canvas.drawRightString(PAGE_W - MARGIN, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def _preliminary_banner(rs: Sequence[Readiness], st: _Styles) -> list[Any]:
    """First-page box: this packet is preliminary, and exactly what it still lacks (per deposit)."""
    lines = [f"<b>{_t(WATERMARK)}</b>",
             "This packet was issued before all the evidence below existed. It still lacks:"]
    for r in rs:
        if r.missing:
            who = f"{_t(r.deposit_id)}: " if len(rs) > 1 else ""
            lines += [f"• {who}{_t(m)}" for m in r.missing]
    lines.append("Ask the depository for the packet again once its deposit page says it is court-ready; until "
                 "then, use this packet only as a preliminary record.")
    box = Table([[Paragraph("<br/>".join(lines), st.body)]], colWidths=[FRAME_W])
    box.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), BODY),
                             ("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor("#a4141c")),
                             ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fdecec")),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                             ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return [box, Spacer(1, 6)]


def render_pages(p: PacketInput) -> bytes:
    """The pages alone (reportlab), without attachments."""
    if not p.entries:
        raise FormatError("a packet needs at least one deposit")
    cjk_font()
    st = _styles()
    matter = len(p.entries) > 1
    rs = packet_readiness([e.bundle for e in p.entries])
    story: list[Any] = [] if all(r.court_ready for r in rs) else _preliminary_banner(rs, st)
    if p.comparison is not None:
        story += _comparison_page(p, st)
    if p.capture is not None:
        story += capture_story(p.capture, st, FRAME_W)
    if matter:
        story.append(Paragraph("Matter evidence packet", st.h1))
        if p.matter:
            story.append(Paragraph(_t(f"Matter: {p.matter}"), ParagraphStyle("m", parent=st.body,
                                                                                alignment=TA_CENTER)))
        data = [[Paragraph(h, st.label) for h in ("#", "Deposit", "Kind", "File", "Received")]]
        for i, e in enumerate(p.entries, 1):
            data.append([Paragraph(str(i), st.cell), Paragraph(_t(e.facts.deposit_id), st.cell_mono),
                         Paragraph(_t(e.facts.kind), st.cell),
                         Paragraph(_t(e.facts.filename or "-"), st.cell),
                         Paragraph(_t(fmt_time(e.facts.received)), st.cell)])
        story.append(_grid(data, [8 * mm, 50 * mm, 20 * mm, FRAME_W - 118 * mm, 40 * mm]))
        story.append(Paragraph(
            "Each deposit has its own section; its attachments are named '&lt;deposit id&gt;.proof.json' and "
            "so on.", st.small))
        story.append(PageBreak())
    for e in p.entries:
        story += _certificate(e, p, st)
        story += _witness_and_path(e, st)
    story += _how_to_verify(p, st, matter)
    story += _declaration(p, st)
    story += _spc_mapping(st)
    out = io.BytesIO()
    title = "Evidence packet " + ", ".join(e.facts.deposit_id for e in p.entries[:3])
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=MARGIN + 4 * mm, title=title[:200], author=p.service_name,
                            subject=("Court-ready evidence packet" if all(r.court_ready for r in rs)
                                     else "Preliminary evidence packet (not court-ready)"),
                            creator="evidence-depository", initialFontName=BODY)
    doc.build(story, onFirstPage=_footer(p, rs), onLaterPages=_footer(p, rs))
    return out.getvalue()


def packet_attachments(p: PacketInput) -> dict[str, bytes]:
    """Every embedded file of the packet, by name."""
    matter = len(p.entries) > 1
    files: dict[str, bytes] = {}
    for e in p.entries:
        files.update(entry_attachments(e, entry_prefix(e.facts.deposit_id, matter)))
    if p.signer_chain_pem:
        files[SIGNER_CHAIN] = p.signer_chain_pem
    return files


_MIME = {".json": "application/json", ".txt": "text/plain", ".tsr": "application/timestamp-reply",
         ".pem": "application/x-pem-file"}


def render_packet(p: PacketInput) -> bytes:
    """The unsigned packet: reportlab pages plus every attachment, embedded in one incremental update."""
    pdf = render_pages(p)
    files = packet_attachments(p)
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    now = p.generated_at
    for name in sorted(files):  # a PDF name tree must be sorted by key
        data = files[name]
        ext = name[name.rfind("."):] if "." in name else ""
        mime = _MIME.get(ext)
        ef = embed.EmbeddedFileObject.from_file_data(
            w, data, mime_type=mime,
            params=embed.EmbeddedFileParams(creation_date=now, modification_date=now))
        embed.embed_file(w, embed.FileSpec(
            file_spec_string=name, file_name=name, embedded_data=ef,
            description=_describe(name)))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _describe(name: str) -> str:
    """The /Desc shown by PDF readers beside each attachment."""
    if ORIGINAL_PREFIX in name:
        return "Original deposited file"
    known = {
        PROOF_JSON: "Proof bundle (evidence-proof/v1)",
        TLOG_PROOF: "C2SP tlog-proof@v1",
        CHECKPOINT: "Cosigned checkpoint (C2SP signed note)",
        CHECKPOINT_BODY: "Checkpoint body: the bytes the timestamp imprint covers",
        TIMESTAMP: "RFC 3161 timestamp token (DER)",
        TSA_CHAIN: "TSA certificate chain (PEM, root last)",
        SIGNER_CHAIN: "Packet signer certificate chain (PEM, root last)",
    }
    return next((d for base, d in known.items() if name.endswith(base)), "attachment")
