"""The leaf: what one deposit contributes to the Merkle log (SPEC.md "Hashes and the leaf").

    evidence-deposit/v1
    id <deposit id>
    kind <contract|invoice|license|copyright|web-capture|other>
    sha256 <64 lowercase hex>
    sm3 <64 lowercase hex>
    size <decimal bytes, or - for hash-only deposits>
    received <RFC 3339 UTC, milliseconds, Z>
    depositor <tenant public id>
    meta <64 lowercase hex: SHA-256 of the RFC 8785 canonical JSON of the metadata>
    salt <32 lowercase hex>

Each line ends in a newline; keys appear exactly in this order and no others (a new key is a new
version). The parser accepts only this exact byte form, so a leaf has one encoding and its leaf hash
cannot be varied by re-encoding; anything else is a FormatError. The salt keeps a published leaf hash
from confirming a guessed document; `meta` commits to the metadata (matter reference, the deposit it
follows) without putting it in the log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from evidence.errors import FormatError

VERSION = "evidence-deposit/v1"
KINDS = ("contract", "invoice", "license", "copyright", "web-capture", "other")
KEYS = ("id", "kind", "sha256", "sm3", "size", "received", "depositor", "meta", "salt")
#: RFC 6962 section 2.1: leaf hash = SHA-256(0x00 || leaf data).
LEAF_PREFIX = b"\x00"
SALT_BYTES = 16
MAX_SIZE = 2**63 - 1

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_RFC3339_MS_Z = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")


def truncate_to_ms(when: datetime) -> datetime:
    """`when` in UTC with sub-millisecond digits dropped: the precision a leaf records."""
    if when.tzinfo is None:
        raise FormatError("received time must be timezone-aware")
    utc = when.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def format_received(when: datetime) -> str:
    """RFC 3339 UTC with milliseconds and Z, e.g. 2026-01-02T03:04:05.678Z."""
    # Not strftime("%Y"): glibc does not zero-pad years before 1000.
    w = when
    return (
        f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}."
        f"{w.microsecond // 1000:03d}Z"
    )


def parse_received(text: str) -> datetime:
    if not _RFC3339_MS_Z.match(text):
        raise FormatError(f"received {text[:40]!r}: want RFC 3339 UTC with milliseconds and Z")
    try:
        return datetime.strptime(text[:-1] + "000", "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError as e:
        raise FormatError(f"received {text!r}: {e}") from e


def new_salt() -> bytes:
    """16 random bytes from `secrets`, one per deposit."""
    return secrets.token_bytes(SALT_BYTES)


_SAFE_INT = 2**53  # RFC 8785 numbers are IEEE doubles: integers beyond this are refused, as by rfc8785


def _plain_json(v: Any) -> bool:
    """True when `v` holds only what sorted compact JSON already writes exactly as RFC 8785 does: strings,
    safe integers, booleans, null, arrays and objects whose keys sort the same by UTF-16 code units as by
    code points (no character at or above U+E000). Floats need ES6 number formatting: not plain."""
    t = type(v)
    if t is str or t is bool or v is None:
        return True
    if t is int:
        return -_SAFE_INT < v < _SAFE_INT
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or not (k.isascii() or max(k, default="") < "\ue000") or not _plain_json(x):
                return False
        return True
    if t is list:
        for x in v:
            if not _plain_json(x):
                return False
        return True
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of `value`.

    Plain values (see _plain_json: what deposit metadata almost always is) are written by orjson with
    sorted keys, which for them is byte-identical to JCS (a property test checks it against the rfc8785
    package) and about twenty times faster; anything else goes through rfc8785 itself.
    """
    if _plain_json(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass  # e.g. a lone surrogate: let rfc8785 decide
    return rfc8785.dumps(value)


def meta_hash(metadata: dict[str, Any]) -> bytes:
    """SHA-256 of the RFC 8785 (JCS) canonical JSON of the metadata, so any JSON tool can recompute it."""
    if not isinstance(metadata, dict):
        raise FormatError("metadata must be a JSON object")
    try:
        canonical = canonical_json(metadata)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise FormatError(f"metadata cannot be canonicalised (RFC 8785): {e}") from e
    return hashlib.sha256(canonical).digest()


def encode_leaf(id: str, kind: str, sha256_hex: str, sm3_hex: str, size: int | None, received: str,
                depositor: str, meta_hex: str, salt_hex: str) -> bytes:
    """The leaf's one byte template. Unchecked: LeafData validates before calling it, and the batch intake
    (which checks each field once per batch or per item itself) calls it directly on its hot path."""
    return (
        f"{VERSION}\nid {id}\nkind {kind}\nsha256 {sha256_hex}\nsm3 {sm3_hex}\n"
        f"size {'-' if size is None else size}\nreceived {received}\n"
        f"depositor {depositor}\nmeta {meta_hex}\nsalt {salt_hex}\n"
    ).encode("ascii")


def valid_id(text: str) -> bool:
    """A deposit id or depositor: [A-Za-z0-9_-]{1,64}."""
    return isinstance(text, str) and _ID.match(text) is not None


@dataclass(frozen=True)
class LeafData:
    """One deposit's leaf. The constructor validates, so every instance encodes."""

    id: str
    kind: str
    sha256: bytes
    sm3: bytes
    size: int | None
    received: datetime
    depositor: str
    meta: bytes
    salt: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise FormatError(f"deposit id {self.id!r} must match [A-Za-z0-9_-]{{1,64}}")
        if not isinstance(self.depositor, str) or not _ID.match(self.depositor):
            raise FormatError(f"depositor {self.depositor!r} must match [A-Za-z0-9_-]{{1,64}}")
        if self.kind not in KINDS:
            raise FormatError(f"kind {self.kind!r}: want one of {', '.join(KINDS)}")
        for name, value, length in (
            ("sha256", self.sha256, 32),
            ("sm3", self.sm3, 32),
            ("meta", self.meta, 32),
            ("salt", self.salt, SALT_BYTES),
        ):
            if not isinstance(value, bytes) or len(value) != length:
                raise FormatError(f"{name} must be {length} bytes")
        if self.size is not None and (isinstance(self.size, bool) or not 0 <= self.size <= MAX_SIZE):
            raise FormatError(f"size {self.size!r} out of range")
        r = self.received
        if r.tzinfo is None or r.utcoffset() != UTC.utcoffset(None) or r.microsecond % 1000:
            raise FormatError(
                "received must be a UTC datetime with millisecond precision (see truncate_to_ms)"
            )

    def to_bytes(self) -> bytes:
        """The exact leaf bytes hashed into the log."""
        return encode_leaf(self.id, self.kind, self.sha256.hex(), self.sm3.hex(), self.size,
                           format_received(self.received), self.depositor, self.meta.hex(), self.salt.hex())

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash SHA-256(0x00 || leaf bytes)."""
        return hashlib.sha256(LEAF_PREFIX + self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeafData:
        """Strictly parse leaf bytes: exact version line, keys, order, case and value forms."""
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as e:
            raise FormatError("leaf data is not ASCII") from e
        if not text.endswith("\n"):
            raise FormatError("leaf data must end with a newline")
        lines = text[:-1].split("\n")
        if lines[0] != VERSION:
            raise FormatError(f"leaf version line {lines[0][:40]!r}, want {VERSION!r}")
        if len(lines) != len(KEYS) + 1:
            raise FormatError(f"leaf has {len(lines) - 1} key lines, want {len(KEYS)}")
        values: dict[str, str] = {}
        for n, (want, line) in enumerate(zip(KEYS, lines[1:], strict=True), start=2):
            key, sep, value = line.partition(" ")
            if key != want or not sep:
                raise FormatError(f"leaf line {n}: got key {key!r}, want {want!r}")
            if not value or value != value.strip() or " " in value or "\t" in value:
                raise FormatError(f"leaf line {n}: bad value for {want}")
            values[key] = value
        for key in ("sha256", "sm3", "meta"):
            if not _HEX64.match(values[key]):
                raise FormatError(f"leaf {key}: want 64 lowercase hex")
        if not _HEX32.match(values["salt"]):
            raise FormatError("leaf salt: want 32 lowercase hex")
        size_text = values["size"]
        if size_text == "-":
            size = None
        elif _DECIMAL.match(size_text):
            size = int(size_text)
        else:
            raise FormatError(f"leaf size {size_text!r}: want decimal without leading zeros, or -")
        return cls(
            id=values["id"],
            kind=values["kind"],
            sha256=bytes.fromhex(values["sha256"]),
            sm3=bytes.fromhex(values["sm3"]),
            size=size,
            received=parse_received(values["received"]),
            depositor=values["depositor"],
            meta=bytes.fromhex(values["meta"]),
            salt=bytes.fromhex(values["salt"]),
        )
