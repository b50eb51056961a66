"""Secrets the service must use again (webhook signing secrets, an SMTP password) encrypted at rest under
the home's master key (issue 18: `whsec_...` secrets sat in the database in plain text).

Unlike an API key or a password these cannot be stored as a hash: signing needs the secret itself. So
each is sealed as an AES-256-GCM envelope

    enc1:<key id>:<base64url(nonce (12) | ciphertext | tag (16))>

under a key derived from the master key (`keys/master.key`, the one that wraps tenants' content keys)
with HKDF-SHA256 and info `depository secrets v1`, so the two uses never share a key. The key id
(first 8 hex digits of SHA-256 of the derived key) names the master key that sealed it, so a value sealed
under a rotated-away key is refused by name instead of failing as "corrupt". The AAD is the value's
place (`monitoring_endpoints/<id>/secret`): a sealed value copied to another row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from depository.errors import IntegrityError

PREFIX = "enc1:"
INFO = b"depository secrets v1"


class SecretBox:
    def __init__(self, master_key: Callable[[], bytes]) -> None:
        self._master_key = master_key  # read lazily: the master key is created on first use
        self._key: bytes | None = None

    def _derived(self) -> bytes:
        if self._key is None:
            self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(self._master_key())
        return self._key

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self._derived()).hexdigest()[:8]

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self._derived()).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}{self.key_id}:{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    def open(self, sealed: str, context: str) -> str:
        """The plaintext of a sealed value; IntegrityError if it was sealed under another key, for another
        place, or altered."""
        if not is_sealed(sealed):
            raise IntegrityError("the stored secret is not sealed")
        key_id, _, blob = sealed[len(PREFIX):].partition(":")
        if key_id != self.key_id:
            raise IntegrityError(f"the stored secret was sealed under master key {key_id}, not {self.key_id}")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            return AESGCM(self._derived()).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError) as e:
            raise IntegrityError("the stored secret fails authentication") from e


def is_sealed(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)
