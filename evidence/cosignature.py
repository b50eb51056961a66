"""Witness cosignatures: C2SP tlog-cosignature v1.0.1 `cosignature/v1` (https://c2sp.org/tlog-cosignature).

A cosignature is a signed-note signature line on a checkpoint. Its signature bytes are
`timestamp (8 bytes, big-endian POSIX seconds) || signature`, and what is signed is

    cosignature/v1\\n
    time <timestamp in decimal>\\n
    <the checkpoint body, final newline included>

Two profiles, both implementing the `evidence.note` `Signer`/`Verifier` protocols so a cosigned
checkpoint can be checked with one `verify_note` call:

* Ed25519 (signature type 0x04): key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4],
  vkey `name+hex8+base64(0x04 || public key)`, skey `PRIVATE+KEY+name+hex8+base64(0x04 || seed)`.
  The signature line is keyid(4) || timestamp(8) || Ed25519 signature(64).
* SM2 national profile (our choice, private type `0xff || "SM2-SM3-cosignature/v1"`): the same signed
  message, signed with SM2/SM3 and user ID `1234567812345678`; the signature line is
  keyid(4) || timestamp(8) || DER SEQUENCE{r, s}. Key ID = SHA-256(name || 0x0A || 0xff ||
  "SM2-SM3-cosignature/v1" || 65-byte point)[:4]; vkey/skey as above with that type prefix and the point
  / 32-byte scalar. A distinct identifier from the log's `SM2-SM3` note type keeps log signatures and
  witness cosignatures from ever being confused, even under one key (signed-note recommends a long
  identifier after 0xff; the `cosignature/v1` suffix names the signed-message format).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import FormatError, SignatureError
from evidence.note import (
    SKEY_PREFIX,
    NoteSignature,
    b64encode,
    compute_key_id,
    format_vkey,
    is_valid_name,
    key_label,
    parse_skey,
    parse_vkey,
)
from evidence.sm2 import SM2PrivateKey, SM2PublicKey

#: signed-note signature type for Ed25519 cosignature/v1.
ALG_COSIGNATURE_V1 = b"\x04"
#: Our private signature type for SM2 witness cosignatures (see module docstring).
ALG_SM2_COSIGNATURE_V1 = b"\xffSM2-SM3-cosignature/v1"
#: tlog-cosignature: the header line providing domain separation.
COSIGNATURE_HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
ED25519_SIG_BYTES = 64


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosigner signs: header, `time <t>` line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError(f"cosignature timestamp {timestamp} out of range [0, 2^63-1]")
    if not body.endswith("\n"):
        raise FormatError("checkpoint body must end with a newline")
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + body.encode()


def _split_sig(sig: bytes) -> tuple[int, bytes]:
    if len(sig) < 9:
        raise FormatError("cosignature shorter than timestamp plus signature")
    timestamp = int.from_bytes(sig[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise FormatError("cosignature timestamp exceeds 2^63-1")
    return timestamp, sig[8:]


def _now() -> int:
    return int(time.time())


# --- Ed25519 cosignature/v1 --------------------------------------------------------------------------


@dataclass(frozen=True)
class CosignatureVerifier:
    """Verifies Ed25519 `cosignature/v1` lines (type 0x04) of one witness."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid witness name {self.name!r}")
        if len(self.public_key) != 32:
            raise FormatError(f"Ed25519 public key: want 32 bytes, got {len(self.public_key)}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_COSIGNATURE_V1 + self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """`msg` is the checkpoint body; `sig` is timestamp(8) || Ed25519 signature(64)."""
        if len(sig) != 8 + ED25519_SIG_BYTES:
            return False
        try:
            timestamp, raw = _split_sig(sig)
            signed = cosignature_message(msg.decode(), timestamp)
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(raw, signed)
        except (FormatError, InvalidSignature, UnicodeDecodeError):
            return False
        return True

    def to_vkey(self) -> str:
        return format_vkey(self.name, ALG_COSIGNATURE_V1 + self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        name, _, key = parse_vkey(vkey)
        if key[:1] != ALG_COSIGNATURE_V1 or len(key) != 33:
            raise FormatError(f"witness key {name}: not an Ed25519 cosignature/v1 (0x04, 32-byte) key")
        return cls(name, key[1:])


@dataclass(frozen=True)
class CosignatureSigner:
    """An Ed25519 witness key producing `cosignature/v1` lines.

    `sign(msg)` (the note `Signer` protocol) stamps the time from `clock`; `cosign(body, time)` takes
    it explicitly, which is what a witness that has just persisted its state should use.
    """

    name: str
    private_key: Ed25519PrivateKey
    clock: Callable[[], int] = field(default=_now, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid witness name {self.name!r}")

    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_COSIGNATURE_V1 + self.public_bytes())

    def sign_at(self, body: bytes, timestamp: int) -> bytes:
        """timestamp(8) || Ed25519 signature over the cosignature/v1 message."""
        signed = cosignature_message(body.decode(), timestamp)
        return timestamp.to_bytes(8, "big") + self.private_key.sign(signed)

    def sign(self, msg: bytes) -> bytes:
        return self.sign_at(msg, self.clock())

    def cosign(self, body: str, timestamp: int) -> str:
        """The signature line (`— name base64(...)\\n`) cosigning checkpoint `body` at `timestamp`."""
        return NoteSignature(self.name, self.key_id, self.sign_at(body.encode(), timestamp)).to_line()

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_bytes())

    def to_skey(self) -> str:
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return f"{SKEY_PREFIX}{self.name}+{self.key_id:08x}+{b64encode(ALG_COSIGNATURE_V1 + seed)}"

    @classmethod
    def from_skey(cls, skey: str) -> CosignatureSigner:
        name, written, key = parse_skey(skey)
        if key[:1] != ALG_COSIGNATURE_V1 or len(key) != 33:
            raise FormatError(f"witness signer key {name}: not an Ed25519 cosignature/v1 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        if signer.key_id != written:
            raise FormatError(f"witness signer key {name}: key ID {written:08x} does not match key")
        return signer


def generate_witness_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 witness key: (signer key text, verifier key text)."""
    signer = CosignatureSigner(name, Ed25519PrivateKey.generate())
    return signer.to_skey(), signer.verifier().to_vkey()


# --- SM2 national profile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SM2CosignatureVerifier:
    """Verifies SM2 witness cosignatures (private type 0xff "SM2-SM3-cosignature/v1")."""

    name: str
    public_key: SM2PublicKey

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid witness name {self.name!r}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_SM2_COSIGNATURE_V1 + self.public_key.point())

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            timestamp, der = _split_sig(sig)
            self.public_key.verify(cosignature_message(msg.decode(), timestamp), der)
        except (FormatError, SignatureError, UnicodeDecodeError):
            return False
        return True

    def to_vkey(self) -> str:
        return format_vkey(self.name, ALG_SM2_COSIGNATURE_V1 + self.public_key.point())

    @classmethod
    def from_vkey(cls, vkey: str) -> SM2CosignatureVerifier:
        name, _, key = parse_vkey(vkey)
        if not key.startswith(ALG_SM2_COSIGNATURE_V1):
            raise FormatError(f"witness key {name}: not an SM2-SM3-cosignature/v1 key")
        return cls(name, SM2PublicKey.from_point(key[len(ALG_SM2_COSIGNATURE_V1) :]))


@dataclass(frozen=True)
class SM2CosignatureSigner:
    """An SM2 witness key producing cosignature lines keyid || timestamp(8) || DER."""

    name: str
    private_key: SM2PrivateKey
    clock: Callable[[], int] = field(default=_now, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise FormatError(f"invalid witness name {self.name!r}")

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_SM2_COSIGNATURE_V1 + self.private_key.public_key().point())

    def sign_at(self, body: bytes, timestamp: int) -> bytes:
        signed = cosignature_message(body.decode(), timestamp)
        return timestamp.to_bytes(8, "big") + self.private_key.sign(signed)

    def sign(self, msg: bytes) -> bytes:
        return self.sign_at(msg, self.clock())

    def cosign(self, body: str, timestamp: int) -> str:
        return NoteSignature(self.name, self.key_id, self.sign_at(body.encode(), timestamp)).to_line()

    def verifier(self) -> SM2CosignatureVerifier:
        return SM2CosignatureVerifier(self.name, self.private_key.public_key())

    def to_skey(self) -> str:
        body = b64encode(ALG_SM2_COSIGNATURE_V1 + self.private_key.to_bytes())
        return f"{SKEY_PREFIX}{self.name}+{self.key_id:08x}+{body}"

    @classmethod
    def from_skey(cls, skey: str) -> SM2CosignatureSigner:
        name, written, key = parse_skey(skey)
        if not key.startswith(ALG_SM2_COSIGNATURE_V1):
            raise FormatError(f"witness signer key {name}: not an SM2-SM3-cosignature/v1 key")
        signer = cls(name, SM2PrivateKey.from_bytes(key[len(ALG_SM2_COSIGNATURE_V1) :]))
        if signer.key_id != written:
            raise FormatError(f"witness signer key {name}: key ID {written:08x} does not match key")
        return signer


def generate_sm2_witness_key(name: str) -> tuple[str, str]:
    """A fresh SM2 witness key: (signer key text, verifier key text)."""
    signer = SM2CosignatureSigner(name, SM2PrivateKey.generate())
    return signer.to_skey(), signer.verifier().to_vkey()


WitnessVerifier = CosignatureVerifier | SM2CosignatureVerifier
WitnessSigner = CosignatureSigner | SM2CosignatureSigner


def parse_witness_key(vkey: str) -> WitnessVerifier:
    """A witness verifier from its vkey text (type 0x04 or 0xff "SM2-SM3-cosignature/v1")."""
    _, _, key = parse_vkey(vkey)
    if key[:1] == ALG_COSIGNATURE_V1:
        return CosignatureVerifier.from_vkey(vkey)
    if key.startswith(ALG_SM2_COSIGNATURE_V1):
        return SM2CosignatureVerifier.from_vkey(vkey)
    raise FormatError(f"witness key {vkey.split('+')[0]}: unsupported signature type 0x{key[0]:02x}")


def parse_witness_signer(skey: str) -> WitnessSigner:
    """A witness signer from its skey text (type 0x04 or 0xff "SM2-SM3-cosignature/v1")."""
    _, _, key = parse_skey(skey)
    if key[:1] == ALG_COSIGNATURE_V1:
        return CosignatureSigner.from_skey(skey)
    if key.startswith(ALG_SM2_COSIGNATURE_V1):
        return SM2CosignatureSigner.from_skey(skey)
    raise FormatError(f"witness signer key: unsupported signature type 0x{key[0]:02x}")


# --- lines ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """A parsed (unverified) cosignature line."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes

    def to_line(self) -> str:
        return NoteSignature(
            self.name, self.key_id, self.timestamp.to_bytes(8, "big") + self.signature
        ).to_line()


def parse_cosignature(line: str) -> Cosignature:
    """Parse (never verify) one cosignature signature line."""
    sig = NoteSignature.from_line(line)
    timestamp, raw = _split_sig(sig.sig_bytes)
    return Cosignature(sig.name, sig.key_id, timestamp, raw)


def verify_cosignature(body: str, line: str, verifier: WitnessVerifier) -> int:
    """Check that `line` is `verifier`'s valid cosignature on checkpoint `body`; returns its timestamp.

    Raises FormatError if the line does not parse and SignatureError if it is by another key or does
    not verify.
    """
    cosig = parse_cosignature(line)
    if (cosig.name, cosig.key_id) != (verifier.name, verifier.key_id):
        raise SignatureError(f"cosignature is by {key_label(cosig)}, not {key_label(verifier)}")
    sig = cosig.timestamp.to_bytes(8, "big") + cosig.signature
    if not verifier.verify(body.encode(), sig):
        raise SignatureError(f"cosignature by {key_label(verifier)} does not verify")
    return cosig.timestamp
