"""Content digests: SHA-256 and SM3, computed in one pass with OpenSSL's implementations.

A digest travels with its algorithm (`Digest("sm3", b"...")`, text form `sm3:<hex>`), never as a bare
string whose algorithm is a guess. SM3 comes from OpenSSL through `hashlib` (gmssl's SM3 is pure Python,
about 10 s/MiB, and is used only as a cross-check in tests).
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from evidence.errors import FormatError

ALGORITHMS = ("sha256", "sm3")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Digest:
    """A digest and the algorithm that made it."""

    algorithm: str
    value: bytes

    def hex(self) -> str:
        return self.value.hex()

    def to_text(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    @classmethod
    def from_text(cls, text: str) -> Digest:
        algorithm, sep, hexvalue = text.partition(":")
        if not sep or algorithm not in ALGORITHMS:
            raise FormatError(f"digest {text[:80]!r}: want <sha256|sm3>:<64 hex>")
        return cls(algorithm, parse_hex64(hexvalue, algorithm))


def new(algorithm: str) -> hashlib._Hash:
    """A fresh OpenSSL-backed hash object for `algorithm` ("sha256" or "sm3")."""
    if algorithm not in ALGORITHMS:
        raise FormatError(f"unknown hash algorithm {algorithm!r}; want one of {', '.join(ALGORITHMS)}")
    return hashlib.new(algorithm)


def parse_hex64(text: str, what: str = "hash") -> bytes:
    """Parse 64 lowercase hex characters; uppercase is accepted and normalised."""
    if not isinstance(text, str) or not HEX64.match(text.lower()):
        raise FormatError(f"{what} must be 64 hexadecimal characters")
    return bytes.fromhex(text)


class DualHasher:
    """SHA-256 and SM3 over the same bytes in one pass (a streamed upload is read once).

    OpenSSL's SM3 runs at roughly a fifth of SHA-256's speed here, so past `PARALLEL_AFTER` bytes the SM3
    updates move to a helper thread (hashlib releases the GIL on large buffers) and the two digests are
    computed side by side. The hand-off queue is bounded, so memory stays flat whatever the size.
    """

    PARALLEL_AFTER = 1 << 20
    QUEUE_CHUNKS = 8

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._sm3 = hashlib.new("sm3")
        self.size = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        self._sha256.update(chunk)
        if self._queue is None and self.size > self.PARALLEL_AFTER:
            self._queue = queue.Queue(self.QUEUE_CHUNKS)
            self._thread = threading.Thread(target=self._sm3_worker, name="sm3", daemon=True)
            self._thread.start()
        if self._queue is not None:
            self._queue.put(bytes(chunk))
        else:
            self._sm3.update(chunk)

    def _sm3_worker(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            self._sm3.update(chunk)

    def _finish(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
            self._thread = None

    @property
    def sha256(self) -> bytes:
        return self._sha256.digest()

    @property
    def sm3(self) -> bytes:
        self._finish()
        return self._sm3.digest()


def digest_bytes(data: bytes) -> tuple[bytes, bytes]:
    """(SHA-256, SM3) of `data`."""
    h = DualHasher()
    h.update(data)
    return h.sha256, h.sm3


def digest_stream(stream: BinaryIO | Iterable[bytes]) -> DualHasher:
    """Hash a binary stream (or an iterable of chunks) in chunks of CHUNK_BYTES."""
    h = DualHasher()
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK_BYTES):
            h.update(chunk)
    else:
        for chunk in stream:
            h.update(chunk)
    return h
