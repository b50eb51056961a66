"""C2SP signed-note v1.0.0 (https://c2sp.org/signed-note@v1.0.0) and golang.org/x/mod/sumdb/note keys.

A note is a text ending in a newline, a blank line, then signature lines
`— <key name> <base64(key ID(4, big-endian) || signature)>`. The text is split from the signatures at
the *last* blank line, so the text itself may contain blank lines. Signature lines from keys we do not
know are kept (so a note re-serialises byte for byte) and ignored by verification.

Keys follow sumdb/note: a verifier key is `name+hex8+base64(type || public key)`, a signer key is
`PRIVATE+KEY+name+hex8+base64(type || private key)`, and hex8 is the key ID
`SHA-256(name || 0x0A || type || public key)[:4]` in lowercase hex. We are stricter than sumdb/note in
one respect: uppercase hex is rejected, so a key has exactly one text form.

Signature types implemented here:

* `0x01` Ed25519 over the note text (`Ed25519Signer` / `Ed25519Verifier`), as in the spec.
* `0xff || "SM2-SM3"` -- our private type (SPEC.md): SM2 with SM3 and user ID `1234567812345678` over
  the note text, signature DER `SEQUENCE {r, s}`. Its "public key" bytes in the key ID and in the
  vkey are the 65-byte uncompressed point, so the key ID is
  `SHA-256(name || 0x0A || 0xff || "SM2-SM3" || point)[:4]` and the vkey text is
  `name+hex8+base64(0xff || "SM2-SM3" || point)`. The signer key text, by the same rule, is
  `PRIVATE+KEY+name+hex8+base64(0xff || "SM2-SM3" || 32-byte scalar)`; the vkey form exists so that a
  tlog-policy file and sumdb-style tooling can name the SM2 key in the same syntax as the Ed25519 one,
  while the PEM SubjectPublicKeyInfo (see `evidence.sm2`) is what OpenSSL users check with.

Witness cosignature types (0x04 and our SM2 variant) live in `evidence.cosignature` and implement the
same `Signer`/`Verifier` protocols, so one `verify_note` call can check a log signature and
cosignatures together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import FormatError, SignatureError
from evidence.sm2 import SM2PrivateKey, SM2PublicKey

#: signed-note "Format": em dash, space, key name, space, base64, newline.
SIG_PREFIX = "\u2014 "
#: signed-note "Signature types".
ALG_ED25519 = b"\x01"
ALG_SM2_SM3 = b"\xffSM2-SM3"
#: sumdb/note prefix of a signer key.
SKEY_PREFIX = "PRIVATE+KEY+"
#: Limits: the spec requires accepting at least 16 signatures; we accept 100 and 1 MB notes.
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1_000_000

_HEX8 = re.compile(r"^[0-9a-f]{8}$")


# --- names, key IDs, base64 ------------------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    """signed-note: key names are non-empty and contain no Unicode spaces and no '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def compute_key_id(name: str, type_and_key: bytes) -> int:
    """Key ID = SHA-256(name || 0x0A || type || public key)[:4] as a big-endian uint32."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + type_and_key).digest()[:4], "big")


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 with padding, canonical only (one text form per byte string)."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise FormatError(f"{what}: bad base64") from e
    if base64.b64encode(data).decode() != text:
        raise FormatError(f"{what}: non-canonical base64")
    return data


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_vkey(name: str, type_and_key: bytes) -> str:
    """`name+hex8+base64(type || public key)`."""
    if not is_valid_name(name):
        raise FormatError(f"invalid key name {name!r}")
    return f"{name}+{compute_key_id(name, type_and_key):08x}+{b64encode(type_and_key)}"


def parse_vkey(vkey: str) -> tuple[str, int, bytes]:
    """Split and check a verifier key: (name, key ID, type || public key); the ID must match the key."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"verifier key {vkey[:60]!r}: want name+hex8+base64")
    name, hex8, b64 = parts
    if not is_valid_name(name):
        raise FormatError(f"verifier key: invalid key name {name!r}")
    if not _HEX8.match(hex8):
        raise FormatError(f"verifier key {name}: key ID {hex8!r} is not 8 lowercase hex digits")
    key = b64decode_strict(b64, f"verifier key {name}")
    if not key:
        raise FormatError(f"verifier key {name}: empty key")
    want = compute_key_id(name, key)
    if int(hex8, 16) != want:
        raise FormatError(f"verifier key {name}: key ID {hex8} does not match key (want {want:08x})")
    return name, want, key


def parse_skey(skey: str) -> tuple[str, int, bytes]:
    """Split a signer key: (name, key ID as written, type || private key). The caller checks the ID."""
    if not skey.startswith(SKEY_PREFIX):
        raise FormatError("signer key: want PRIVATE+KEY+name+hex8+base64")
    parts = skey[len(SKEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise FormatError("signer key: want PRIVATE+KEY+name+hex8+base64")
    name, hex8, b64 = parts
    if not is_valid_name(name):
        raise FormatError(f"signer key: invalid key name {name!r}")
    if not _HEX8.match(hex8):
        raise FormatError(f"signer key {name}: key ID {hex8!r} is not 8 lowercase hex digits")
    key = b64decode_strict(b64, f"signer key {name}")
    if not key:
        raise FormatError(f"signer key {name}: empty key")
    return name, int(hex8, 16), key


def _check_skey_id(name: str, written: int, type_and_public: bytes) -> None:
    want = compute_key_id(name, type_and_public)
    if written != want:
        raise FormatError(f"signer key {name}: key ID {written:08x} does not match key (want {want:08x})")


# --- protocols ---------------------------------------------------------------------------------------


@runtime_checkable
class Signer(Protocol):
    """Something that signs note texts under a (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, msg: bytes) -> bytes:
        """Signature bytes (without the key ID) over the note text `msg`."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Something that checks note signatures made under a (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """True if `sig` (without the key ID) is a valid signature over the note text `msg`."""
        ...


class KeyRef(Protocol):
    """Anything naming a key: a signer, a verifier, or a signature line."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...


def key_label(k: KeyRef) -> str:
    """`name+hex8`, how messages name a key."""
    return f"{k.name}+{k.key_id:08x}"


# --- Ed25519 (type 0x01) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ed25519Verifier:
    """Ed25519 note verifier (signature type 0x01)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise FormatError(f"Ed25519 public key: want 32 bytes, got {len(self.public_key)}")
        if not is_valid_name(self.name):
            raise FormatError(f"invalid key name {self.name!r}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_ED25519 + self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def to_vkey(self) -> str:
        return format_vkey(self.name, ALG_ED25519 + self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Ed25519Verifier:
        name, _, key = parse_vkey(vkey)
        if key[:1] != ALG_ED25519 or len(key) != 33:
            raise FormatError(f"verifier key {name}: not an Ed25519 (0x01, 32-byte) key")
        return cls(name, key[1:])


@dataclass(frozen=True)
class Ed25519Signer:
    """Ed25519 note signer (signature type 0x01); deterministic signatures (RFC 8032)."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid key name {self.name!r}")

    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_ED25519 + self.public_bytes())

    def sign(self, msg: bytes) -> bytes:
        return self.private_key.sign(msg)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public_bytes())

    def to_skey(self) -> str:
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return f"{SKEY_PREFIX}{self.name}+{self.key_id:08x}+{b64encode(ALG_ED25519 + seed)}"

    @classmethod
    def from_skey(cls, skey: str) -> Ed25519Signer:
        name, written, key = parse_skey(skey)
        if key[:1] != ALG_ED25519 or len(key) != 33:
            raise FormatError(f"signer key {name}: not an Ed25519 (0x01, 32-byte seed) key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        _check_skey_id(name, written, ALG_ED25519 + signer.public_bytes())
        return signer


def generate_ed25519(name: str) -> tuple[str, str]:
    """A fresh Ed25519 note key: (signer key text, verifier key text)."""
    signer = Ed25519Signer(name, Ed25519PrivateKey.generate())
    return signer.to_skey(), signer.verifier().to_vkey()


# --- SM2/SM3 (private type 0xff "SM2-SM3") ----------------------------------------------------------


@dataclass(frozen=True)
class SM2Verifier:
    """SM2-with-SM3 note verifier, user ID 1234567812345678 (private type 0xff "SM2-SM3")."""

    name: str
    public_key: SM2PublicKey

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid key name {self.name!r}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_SM2_SM3 + self.public_key.point())

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self.public_key.verify(msg, sig)
        except SignatureError:
            return False
        return True

    def to_vkey(self) -> str:
        return format_vkey(self.name, ALG_SM2_SM3 + self.public_key.point())

    @classmethod
    def from_vkey(cls, vkey: str) -> SM2Verifier:
        name, _, key = parse_vkey(vkey)
        if not key.startswith(ALG_SM2_SM3):
            raise FormatError(f"verifier key {name}: not an SM2-SM3 (0xff 'SM2-SM3') key")
        return cls(name, SM2PublicKey.from_point(key[len(ALG_SM2_SM3) :]))


@dataclass(frozen=True)
class SM2Signer:
    """SM2-with-SM3 note signer; randomised signatures (each call differs)."""

    name: str
    private_key: SM2PrivateKey

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid key name {self.name!r}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_SM2_SM3 + self.private_key.public_key().point())

    def sign(self, msg: bytes) -> bytes:
        return self.private_key.sign(msg)

    def verifier(self) -> SM2Verifier:
        return SM2Verifier(self.name, self.private_key.public_key())

    def to_skey(self) -> str:
        body = b64encode(ALG_SM2_SM3 + self.private_key.to_bytes())
        return f"{SKEY_PREFIX}{self.name}+{self.key_id:08x}+{body}"

    @classmethod
    def from_skey(cls, skey: str) -> SM2Signer:
        name, written, key = parse_skey(skey)
        if not key.startswith(ALG_SM2_SM3):
            raise FormatError(f"signer key {name}: not an SM2-SM3 key")
        signer = cls(name, SM2PrivateKey.from_bytes(key[len(ALG_SM2_SM3) :]))
        _check_skey_id(name, written, ALG_SM2_SM3 + signer.private_key.public_key().point())
        return signer


def generate_sm2(name: str) -> tuple[str, str]:
    """A fresh SM2 note key: (signer key text, verifier key text)."""
    signer = SM2Signer(name, SM2PrivateKey.generate())
    return signer.to_skey(), signer.verifier().to_vkey()


def parse_verifier_key(vkey: str) -> Ed25519Verifier | SM2Verifier:
    """A note verifier from its vkey text, by signature type (0x01 or 0xff "SM2-SM3")."""
    _, _, key = parse_vkey(vkey)
    if key[:1] == ALG_ED25519:
        return Ed25519Verifier.from_vkey(vkey)
    if key.startswith(ALG_SM2_SM3):
        return SM2Verifier.from_vkey(vkey)
    raise FormatError(f"verifier key {vkey.split('+')[0]}: unsupported signature type 0x{key[0]:02x}")


def parse_signer_key(skey: str) -> Ed25519Signer | SM2Signer:
    """A note signer from its skey text, by signature type (0x01 or 0xff "SM2-SM3")."""
    _, _, key = parse_skey(skey)
    if key[:1] == ALG_ED25519:
        return Ed25519Signer.from_skey(skey)
    if key.startswith(ALG_SM2_SM3):
        return SM2Signer.from_skey(skey)
    raise FormatError(f"signer key: unsupported signature type 0x{key[0]:02x}")


# --- the note ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    sig_bytes: bytes

    def to_line(self) -> str:
        """`— name base64(keyid || sig)\\n`."""
        blob = self.key_id.to_bytes(4, "big") + self.sig_bytes
        return f"{SIG_PREFIX}{self.name} {b64encode(blob)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line, with or without its final newline."""
        body = line[:-1] if line.endswith("\n") else line
        if not body.startswith(SIG_PREFIX):
            raise FormatError(f"signature line {body[:40]!r} does not start with an em dash and a space")
        name, sep, b64 = body[len(SIG_PREFIX) :].partition(" ")
        if not sep or not is_valid_name(name):
            raise FormatError(f"signature line {body[:40]!r}: bad key name")
        blob = b64decode_strict(b64, f"signature by {name}")
        if len(blob) < 5:
            raise FormatError(f"signature by {name}: shorter than key ID plus one byte")
        return cls(name, int.from_bytes(blob[:4], "big"), blob[4:])


def check_text(text: str) -> None:
    """A note text: non-empty, ends with a newline, no control characters other than newline."""
    if not text or not text.endswith("\n"):
        raise FormatError("note text must be non-empty and end with a newline")
    bad = next((c for c in text if c < " " and c != "\n"), None)
    if bad is not None:
        raise FormatError(f"note contains control character U+{ord(bad):04X}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise FormatError("note is not valid UTF-8") from e
    if size > MAX_NOTE_BYTES:
        raise FormatError(f"note longer than {MAX_NOTE_BYTES} bytes")


@dataclass(frozen=True)
class Note:
    """A parsed signed note: the text (final newline included) and every signature line, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def from_text(cls, note: str | bytes) -> Note:
        """Parse (never verify) a signed note. Bytes must be UTF-8."""
        if isinstance(note, bytes):
            if len(note) > MAX_NOTE_BYTES:
                raise FormatError(f"note longer than {MAX_NOTE_BYTES} bytes")
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError("note is not valid UTF-8") from e
        check_text(note)
        split = note.rfind("\n\n")
        if split < 0:
            raise FormatError("note has no blank line before its signatures")
        text, sigs = note[: split + 1], note[split + 2 :]
        if not sigs:
            raise FormatError("note has no signature lines")
        lines = sigs.split("\n")[:-1]
        if len(lines) > MAX_SIGNATURES:
            raise FormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
        return cls(text, tuple(NoteSignature.from_line(line) for line in lines))

    def to_text(self) -> str:
        """The note as it goes on the wire: text, blank line, signature lines."""
        check_text(self.text)
        if not self.signatures:
            raise FormatError("a signed note needs at least one signature")
        return self.text + "\n" + "".join(s.to_line() for s in self.signatures)

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """The same text with `extra` signature lines appended (e.g. witness cosignatures)."""
        return Note(self.text, self.signatures + tuple(extra))


def sign_signatures(text: str, signers: Sequence[Signer]) -> tuple[NoteSignature, ...]:
    """Signature lines by each signer over `text` (which must be a valid note text)."""
    check_text(text)
    msg = text.encode()
    out = []
    for s in signers:
        if not is_valid_name(s.name):
            raise FormatError(f"invalid signer name {s.name!r}")
        out.append(NoteSignature(s.name, s.key_id, s.sign(msg)))
    return tuple(out)


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """A signed note: `text` signed by every signer, in the order given."""
    if not signers:
        raise FormatError("sign_note needs at least one signer")
    return Note(text, sign_signatures(text, signers)).to_text()


def add_signatures(note_text: str, signers: Sequence[Signer]) -> str:
    """`note_text` with signature lines by `signers` appended (existing lines kept byte for byte)."""
    note = Note.from_text(note_text)
    return note.with_signatures(sign_signatures(note.text, signers)).to_text()


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose text may be trusted: whose signatures verified, and which lines were unknown."""

    text: str
    verified: tuple[NoteSignature, ...]
    verifiers: tuple[Verifier, ...]
    unverified: tuple[NoteSignature, ...]

    def verified_by(self, verifier: Verifier) -> bool:
        return any(v.name == verifier.name and v.key_id == verifier.key_id for v in self.verifiers)

    @property
    def verified_names(self) -> frozenset[str]:
        return frozenset(v.name for v in self.verifiers)


def verify_note(note_text: str | bytes | Note, verifiers: Sequence[Verifier]) -> VerifiedNote:
    """Parse and check a note against the given verifiers.

    Per signed-note "Signatures": a line whose (name, key ID) matches no verifier is ignored; a line
    from a known key MUST verify, and if it does not the whole note is rejected (SignatureError names
    the key); if no known key's signature is present, SignatureError lists the keys we looked for.
    """
    note = note_text if isinstance(note_text, Note) else Note.from_text(note_text)
    known: dict[tuple[str, int], Verifier] = {}
    for given in verifiers:
        k = (given.name, given.key_id)
        if k in known and known[k] is not given:
            raise FormatError(f"two verifiers share the key name and ID {key_label(given)}")
        known[k] = given
    msg = note.text.encode()
    verified: list[NoteSignature] = []
    used: list[Verifier] = []
    unverified: list[NoteSignature] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            unverified.append(sig)
            continue
        if not v.verify(msg, sig.sig_bytes):
            raise SignatureError(f"signature by {key_label(sig)} does not verify")
        verified.append(sig)
        if all(u is not v for u in used):
            used.append(v)
    if not verified:
        wanted = ", ".join(key_label(v) for v in verifiers) or "none given"
        present = ", ".join(key_label(s) for s in note.signatures)
        raise SignatureError(f"note has no signature by a known key (known: {wanted}; present: {present})")
    return VerifiedNote(note.text, tuple(verified), tuple(used), tuple(unverified))
