"""Signed byte ranges of a PDF, checked on the raw bytes before anything in the file is parsed.

A PDF signature (ISO 32000 12.8.1) signs the whole file except a hole, the hex string `/Contents <…>`,
named by `/ByteRange [0 b c d]`. The digest over those ranges is in the CMS signature (the
`messageDigest` signed attribute; for a document timestamp, the TSTInfo's `messageImprint`). Comparing
the two needs no PDF parser, so it runs first: a byte changed anywhere inside a signed range is then
reported as *altered after signing*, never as "unreadable" because the change also broke a compressed
stream or the cross-reference table that a parser would trip over first.

Nothing here checks who signed or whether the signature value verifies: that is pyHanko's validation in
`evidence.pdfsig`, which runs only once every range is intact.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass

from asn1crypto import cms

# `/ByteRange [a b c d]`: loose on purpose (any bytes up to the bracket) so a damaged array is still seen.
_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[([^\]]{0,120})\]")
# A signature dictionary's type: present even when its /ByteRange keyword is what was damaged.
_SIG_TYPES = (b"/Type /Sig", b"/Type/Sig", b"/DocTimeStamp")


@dataclass(frozen=True)
class SignedRange:
    """One signature found in the raw bytes: what it covers and whether those bytes are as signed.

    `hole` is (start, end) of the `<…>` hex string (unsigned); `problem` is empty when the digest matches.
    `altered` is True when the signed bytes changed; False with a `problem` means the signature value in
    the hole is itself damaged (unreadable CMS, data after it).
    """

    offset: int
    ranges: tuple[int, int, int, int]
    kind: str
    digest_algorithm: str
    problem: str = ""
    altered: bool = False

    @property
    def hole(self) -> tuple[int, int]:
        return self.ranges[1], self.ranges[2]

    @property
    def end(self) -> int:
        return self.ranges[2] + self.ranges[3]


@dataclass(frozen=True)
class RangeReport:
    """Every signature found, and the verdict on the file as a whole."""

    signatures: tuple[SignedRange, ...]
    size: int
    has_signature_dict: bool

    def altered(self) -> str | None:
        """Why the file reads as altered after signing, or None when every signed byte is as signed."""
        for s in self.signatures:
            if s.altered:
                return f"{s.problem} (signature at byte {s.offset})"
        if not self.signatures:
            return ("a signature dictionary is in the file but no byte range in it matches the file"
                    if self.has_signature_dict else None)
        last = max(s.end for s in self.signatures)
        if last != self.size:
            return (f"{self.size - last} byte(s) after the last signed range are covered by no signature"
                    if last < self.size else "a byte range runs past the end of the file")
        return None

    def damaged(self) -> str | None:
        """A signature value (in an unsigned hole) that cannot be read, or None."""
        for s in self.signatures:
            if s.problem and not s.altered:
                return f"{s.problem} (signature at byte {s.offset})"
        return None


def _ints(raw: bytes) -> tuple[int, int, int, int] | None:
    parts = raw.split()
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    a, b, c, d = (int(p) for p in parts)
    return a, b, c, d


def _consistent(pdf: bytes, r: tuple[int, int, int, int]) -> bool:
    """Whether the ranges describe this file: from byte 0, a `<…>` hole, inside the file.

    A range that fails this is not one of this file's signatures (a signed PDF stored uncompressed inside
    an attachment, or an array whose digits were changed); either way the signatures that *are*
    consistent, and the rule that the last one reaches the end of the file, decide.
    """
    a, b, c, d = r
    return (a == 0 and 0 < b < c <= c + d <= len(pdf) and pdf[b:b + 1] == b"<"
            and pdf[c - 1:c] == b">")


def _expected_digest(der: bytes) -> tuple[str, str, bytes]:
    """(kind, algorithm, digest) the CMS in a signature hole claims for the signed ranges.

    ValueError when the hole does not hold a readable CMS SignedData (or holds data after it).
    """
    info = cms.ContentInfo.load(der)
    length = len(info.dump())
    if der[length:].strip(b"\x00"):
        raise ValueError("data after the end of the signature")
    if info["content_type"].native != "signed_data":
        raise ValueError(f"CMS content type {info['content_type'].native}, want signed_data")
    sd = info["content"]
    eci = sd["encap_content_info"]
    if eci["content_type"].native == "tst_info":
        tst = eci["content"].parsed
        imprint = tst["message_imprint"]
        return "timestamp", imprint["hash_algorithm"]["algorithm"].native, imprint["hashed_message"].native
    si = sd["signer_infos"][0]
    algorithm = si["digest_algorithm"]["algorithm"].native
    for attr in si["signed_attrs"]:
        if attr["type"].native == "message_digest":
            return "signature", algorithm, attr["values"][0].native
    raise ValueError("no messageDigest signed attribute")


def scan(pdf: bytes) -> RangeReport:
    """Find every signature in the raw bytes and compare each signed range's digest with its signature."""
    found: list[SignedRange] = []
    for m in _BYTE_RANGE.finditer(pdf):
        r = _ints(m.group(1))
        if r is None or not _consistent(pdf, r):
            continue
        a, b, c, d = r
        try:
            der = binascii.unhexlify(re.sub(rb"\s+", b"", pdf[b + 1:c - 1]))
            kind, algorithm, want = _expected_digest(der)
            h = hashlib.new(algorithm)
        except (ValueError, TypeError, KeyError, IndexError, binascii.Error) as e:
            found.append(SignedRange(m.start(), r, "unknown", "", f"the signature value is damaged: {e}"))
            continue
        h.update(pdf[a:a + b])
        h.update(pdf[c:c + d])
        got = h.digest()
        if got != want:
            what = "document timestamp" if kind == "timestamp" else "signature"
            found.append(SignedRange(m.start(), r, kind, algorithm,
                                     f"the bytes the {what} covers have changed: {algorithm} of bytes "
                                     f"0-{b - 1} and {c}-{c + d - 1} is {got.hex()[:16]}…, the {what} "
                                     f"signed {want.hex()[:16]}…", altered=True))
        else:
            found.append(SignedRange(m.start(), r, kind, algorithm))
    return RangeReport(tuple(found), len(pdf), any(t in pdf for t in _SIG_TYPES))
