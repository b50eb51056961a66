"""C2SP tlog-proof@v1 (https://c2sp.org/tlog-proof): an offline proof that an entry is in a log.

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>        (optional; we put the leaf data here)
    index <decimal, no leading zeros>
    <base64 SHA-256 hash>             (zero or more: the RFC 6962 inclusion proof, leaf's sibling first)

    <the signed checkpoint note, verbatim, cosignatures included>

This module only parses and formats. Checking the inclusion proof against the checkpoint's root and
the checkpoint's signatures against a policy are separate steps (Merkle verification and
`evidence.policy.verify_checkpoint_with_policy`), so a proof can be read and shown before it is trusted.
The extra data is not authenticated by the format; whoever uses it must hash it into the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass

from evidence.checkpoint import HASH_BYTES, SignedCheckpoint, parse_decimal
from evidence.errors import FormatError
from evidence.note import b64decode_strict, b64encode

HEADER = "c2sp.org/tlog-proof@v1"
EXTRA_PREFIX = "extra "
INDEX_PREFIX = "index "
#: A 2^64-leaf tree needs at most 64 proof hashes.
MAX_PROOF_HASHES = 64


@dataclass(frozen=True)
class TlogProof:
    """Extra data, leaf index, inclusion proof hashes and the signed checkpoint note text."""

    extra: bytes | None
    index: int
    proof: tuple[bytes, ...]
    checkpoint_text: str

    def __post_init__(self) -> None:
        if any(len(h) != HASH_BYTES for h in self.proof):
            raise FormatError(f"tlog-proof hashes must be {HASH_BYTES} bytes")
        if len(self.proof) > MAX_PROOF_HASHES:
            raise FormatError(f"tlog-proof has {len(self.proof)} hashes, more than {MAX_PROOF_HASHES}")
        size = self.signed_checkpoint.checkpoint.size
        if not 0 <= self.index < size:
            raise FormatError(f"tlog-proof index {self.index} not below checkpoint size {size}")

    @property
    def signed_checkpoint(self) -> SignedCheckpoint:
        """The checkpoint, parsed (signatures not verified)."""
        return SignedCheckpoint.from_text(self.checkpoint_text)

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(EXTRA_PREFIX + b64encode(self.extra))
        lines.append(f"{INDEX_PREFIX}{self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint_text

    @classmethod
    def from_text(cls, text: str | bytes) -> TlogProof:
        """Strictly parse a tlog-proof (never verifies it)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError("tlog-proof is not valid UTF-8") from e
        head, sep, checkpoint_text = text.partition("\n\n")
        if not sep:
            raise FormatError("tlog-proof has no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise FormatError(f"tlog-proof first line {lines[0][:40]!r}, want {HEADER!r}")
        pos = 1
        extra = None
        if pos < len(lines) and lines[pos].startswith(EXTRA_PREFIX):
            extra = b64decode_strict(lines[pos][len(EXTRA_PREFIX) :], "tlog-proof extra")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith(INDEX_PREFIX):
            raise FormatError(f"tlog-proof line {pos + 1}: want 'index N'")
        index = parse_decimal(lines[pos][len(INDEX_PREFIX) :], "tlog-proof index")
        proof = []
        for n, line in enumerate(lines[pos + 1 :], start=pos + 2):
            h = b64decode_strict(line, f"tlog-proof line {n}")
            if len(h) != HASH_BYTES:
                raise FormatError(f"tlog-proof line {n}: hash is {len(h)} bytes, want {HASH_BYTES}")
            proof.append(h)
        return cls(extra, index, tuple(proof), checkpoint_text)
