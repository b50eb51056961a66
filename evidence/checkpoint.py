"""C2SP tlog-checkpoint v1.0.0 (https://c2sp.org/tlog-checkpoint@v1.0.0): the log's signed tree head.

The body is the signed-note text: origin line, decimal tree size (no leading zeros), base64 RFC 6962
root hash, then optional non-empty extension lines, each ending in a newline. This text -- final
newline included, blank line and signature lines excluded -- is what every signature (log Ed25519,
log SM2, witness cosignatures) and the RFC 3161 timestamp imprint cover, so `SignedCheckpoint.body`
returns it verbatim rather than re-serialising the parsed fields.

Parsing (`from_text`) never checks signatures; `verify_checkpoint` does, and insists the log key's
name equals the origin (tlog-checkpoint says it SHOULD; SPEC.md says the log's key name is its origin).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evidence.errors import FormatError, SignatureError
from evidence.note import (
    Note,
    NoteSignature,
    Signer,
    VerifiedNote,
    Verifier,
    b64decode_strict,
    b64encode,
    check_text,
    sign_signatures,
    verify_note,
)

HASH_BYTES = 32
MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


def parse_decimal(text: str, what: str, maximum: int = MAX_TREE_SIZE) -> int:
    """ASCII decimal, no sign, no leading zeros (unless exactly "0"), at most `maximum`."""
    if not _DECIMAL.match(text) or len(text) > 20:
        raise FormatError(f"{what} {text[:30]!r} is not a decimal without leading zeros")
    value = int(text)
    if value > maximum:
        raise FormatError(f"{what} {value} exceeds {maximum}")
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size and root hash (plus opaque extension lines, NOT RECOMMENDED)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin must be a non-empty single line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise FormatError(f"checkpoint size {self.size} out of range")
        if len(self.root_hash) != HASH_BYTES:
            raise FormatError(f"checkpoint root hash is {len(self.root_hash)} bytes, want {HASH_BYTES}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise FormatError("checkpoint extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """The note text (body) of this checkpoint, final newline included."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        text = "\n".join(lines) + "\n"
        check_text(text)
        return text

    @classmethod
    def from_text(cls, body: str) -> Checkpoint:
        """Strictly parse a checkpoint body (the note text, not the signed note)."""
        check_text(body)
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(f"checkpoint has {len(lines)} lines, want at least 3")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise FormatError("checkpoint origin line is empty")
        size = parse_decimal(size_text, "checkpoint size")
        root = b64decode_strict(root_text, "checkpoint root hash")
        if len(root) != HASH_BYTES:
            raise FormatError(f"checkpoint root hash is {len(root)} bytes, want {HASH_BYTES}")
        if any(not e for e in extensions):
            raise FormatError("checkpoint extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))


def split_signed_note(note_text: str) -> tuple[str, list[str]]:
    """(body, signature lines each with its final newline) of a signed note, parsed strictly."""
    note = Note.from_text(note_text)
    return note.text, [s.to_line() for s in note.signatures]


def append_signature_lines(note_text: str, lines: Iterable[str]) -> str:
    """`note_text` with further signature lines appended; lines already present are not repeated."""
    note = Note.from_text(note_text)
    present = set(note.signatures)
    extra: list[NoteSignature] = []
    for line in lines:
        for part in line.splitlines():
            sig = NoteSignature.from_line(part)
            if sig not in present:
                present.add(sig)
                extra.append(sig)
    return note.with_signatures(extra).to_text()


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the signed note carrying it (log signatures, then cosignatures)."""

    checkpoint: Checkpoint
    note: Note

    @property
    def body(self) -> str:
        """The exact note text that the signatures sign (and the timestamp imprint hashes)."""
        return self.note.text

    @property
    def signatures(self) -> tuple[NoteSignature, ...]:
        return self.note.signatures

    def signature_lines(self) -> list[str]:
        return [s.to_line() for s in self.note.signatures]

    @classmethod
    def from_text(cls, note_text: str | bytes) -> SignedCheckpoint:
        """Parse (never verify) a signed checkpoint note."""
        note = Note.from_text(note_text)
        return cls(Checkpoint.from_text(note.text), note)

    def to_text(self) -> str:
        return self.note.to_text()

    @classmethod
    def sign(cls, checkpoint: Checkpoint, signers: Sequence[Signer]) -> SignedCheckpoint:
        """Sign a checkpoint body with each of `signers` (the log's Ed25519 and SM2 keys)."""
        if not signers:
            raise FormatError("a checkpoint needs at least one signer")
        body = checkpoint.to_text()
        return cls(checkpoint, Note(body, sign_signatures(body, signers)))

    def with_signature_lines(self, lines: Iterable[str]) -> SignedCheckpoint:
        """The same checkpoint with more signature lines (e.g. witness cosignatures) appended."""
        return SignedCheckpoint.from_text(append_signature_lines(self.to_text(), lines))


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature verified, and the verification detail of its note."""

    checkpoint: Checkpoint
    note: VerifiedNote


def verify_checkpoint(note_text: str | bytes, log_verifiers: Sequence[Verifier]) -> VerifiedCheckpoint:
    """Verify a signed checkpoint against the log's verifiers; the verifying key must be named as the origin.

    Raises FormatError if it does not parse, SignatureError if no log key verifies, a known key's
    signature is bad, or the verifying key's name differs from the origin.
    """
    signed = SignedCheckpoint.from_text(note_text)
    verified = verify_note(signed.note, log_verifiers)
    if signed.checkpoint.origin not in verified.verified_names:
        raise SignatureError(
            f"checkpoint origin {signed.checkpoint.origin!r} is not the name of the verifying log key "
            f"(got {', '.join(sorted(verified.verified_names))})"
        )
    return VerifiedCheckpoint(signed.checkpoint, verified)
