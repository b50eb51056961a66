"""Encrypted content at rest, only for tenants that opt in.

Each tenant has its own data key (AES-256-GCM, or SM4-GCM for the national profile), wrapped with AES key
wrap (RFC 3394) under the depository's master key in `$DEPOSITORY_HOME/keys/master.key`. A stored file is
`DEPC1 | cipher id (1) | nonce (12) | ciphertext | tag (16)`, with the deposit and tenant ids as AAD so a
file cannot be swapped between deposits unnoticed.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from depository.errors import BadRequest, InsufficientStorage, IntegrityError, NotFound

MAGIC = b"DEPC1"
CIPHERS = {"aes-256-gcm": (1, 32), "sm4-gcm": (2, 16)}
CHUNK = 1 << 20
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # disk full, quota exceeded, RLIMIT_FSIZE


def _algorithm(cipher: str, key: bytes) -> algorithms.AES | algorithms.SM4:
    return algorithms.AES(key) if cipher == "aes-256-gcm" else algorithms.SM4(key)


class ContentStore:
    def __init__(self, root: Path, master_key_file: Path) -> None:
        self.root = root
        self.master_key_file = master_key_file

    def master_key(self) -> bytes:
        """The home's master key (created 0600 on first use); see also depository.secretbox."""
        return self._master_key()

    def _master_key(self) -> bytes:
        if not self.master_key_file.exists():
            self.master_key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.master_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        return self.master_key_file.read_bytes()

    def new_tenant_key(self, cipher: str) -> bytes:
        """A fresh data key for a tenant, wrapped under the master key (what the database stores)."""
        if cipher not in CIPHERS:
            raise BadRequest(f"cipher must be one of {', '.join(CIPHERS)}")
        key = secrets.token_bytes(CIPHERS[cipher][1])
        # AES key wrap needs >= 16 bytes; both key sizes qualify.
        return aes_key_wrap(self._master_key(), key)

    def _unwrap(self, wrapped: bytes) -> bytes:
        return aes_key_unwrap(self._master_key(), wrapped)

    def _path(self, tenant_id: str, deposit_id: str) -> Path:
        return self.root / tenant_id / f"{deposit_id}.bin"

    def put(self, tenant_id: str, deposit_id: str, cipher: str, wrapped_key: bytes, src: BinaryIO) -> Path:
        key = self._unwrap(wrapped_key)
        nonce = secrets.token_bytes(12)
        enc = Cipher(_algorithm(cipher, key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(f"{tenant_id}/{deposit_id}".encode())
        path = self._path(tenant_id, deposit_id)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                out.write(MAGIC + bytes([CIPHERS[cipher][0]]) + nonce)
                while chunk := src.read(CHUNK):
                    out.write(enc.update(chunk))
                out.write(enc.finalize())
                out.write(enc.tag)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as e:
            # Nothing half-written may stay behind: the deposit is refused, so its file must not exist.
            tmp.unlink(missing_ok=True)
            if e.errno in _FULL:
                raise InsufficientStorage(f"the content store cannot take this file: {e.strerror}") from e
            raise
        return path

    def exists(self, tenant_id: str, deposit_id: str) -> bool:
        return self._path(tenant_id, deposit_id).exists()

    def read(self, tenant_id: str, deposit_id: str, cipher: str, wrapped_key: bytes) -> bytes:
        return b"".join(self.iter_plain(tenant_id, deposit_id, cipher, wrapped_key))

    def iter_plain(self, tenant_id: str, deposit_id: str, cipher: str, wrapped_key: bytes) -> Iterator[bytes]:
        path = self._path(tenant_id, deposit_id)
        if not path.exists():
            raise NotFound("content was not stored for this deposit")
        blob = path.read_bytes()
        if blob[:5] != MAGIC or blob[5] != CIPHERS[cipher][0]:
            raise IntegrityError(f"stored content of {deposit_id} has an unknown format")
        nonce, body, tag = blob[6:18], blob[18:-16], blob[-16:]
        dec = Cipher(_algorithm(cipher, self._unwrap(wrapped_key)), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(f"{tenant_id}/{deposit_id}".encode())
        out = dec.update(body)
        try:
            out += dec.finalize()
        except Exception as e:
            raise IntegrityError(f"stored content of {deposit_id} fails authentication") from e
        yield out
