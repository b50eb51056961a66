"""Content digests: SHA-256 and SM3 in one pass, serial for small inputs and side by side for large ones;
SM3 cross-checked against gmssl's independent (pure Python) implementation."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from gmssl import sm3 as gm_sm3  # type: ignore[import-untyped]

from evidence.errors import FormatError
from evidence.hashes import Digest, DualHasher, digest_bytes, digest_stream, parse_hex64


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) + 1, 3 * (1 << 20) + 12345])
def test_dual_hasher_matches_hashlib_serial_and_parallel(size: int) -> None:
    rnd = random.Random(size)
    data = rnd.randbytes(size)
    h = DualHasher()
    pos = 0
    while pos < size:
        n = rnd.choice([1, 17, 4096, 65536, 200_000])
        h.update(data[pos:pos + n])
        pos += n
    assert h.size == size
    assert h.sha256 == hashlib.sha256(data).digest()
    assert h.sm3 == hashlib.new("sm3", data).digest()
    assert h.sm3 == hashlib.new("sm3", data).digest()  # reading twice is fine


def test_sm3_agrees_with_gmssl_and_the_standard_vector() -> None:
    assert digest_bytes(b"abc")[1].hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    data = random.Random(3).randbytes(3000)
    assert digest_bytes(data)[1].hex() == gm_sm3.sm3_hash(list(data))


def test_stream_and_digest_text() -> None:
    data = b"x" * 5_000_000
    h = digest_stream(io.BytesIO(data))
    assert h.sha256 == hashlib.sha256(data).digest() and h.size == len(data)
    d = Digest("sm3", h.sm3)
    assert Digest.from_text(d.to_text()) == d
    for bad in ("md5:" + "0" * 64, "sm3:" + "0" * 63, "sha256", "sha256:" + "g" * 64):
        with pytest.raises(FormatError):
            Digest.from_text(bad)
    with pytest.raises(FormatError):
        parse_hex64("zz")
