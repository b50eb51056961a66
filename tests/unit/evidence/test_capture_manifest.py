"""The capture manifest: canonical bytes, signature, artefact digests; each way of tampering is named."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.capture_manifest import ManifestError, artefact_entry, key_id, sign_manifest, verify_manifest

SHOT = b"\x89PNG fake screenshot bytes"
WARC = b"WARC/1.1 fake"


@pytest.fixture
def signed() -> tuple[bytes, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    body = {"capture_id": "cap_1", "url": "https://example.com/", "timing": {"total_ms": 812.5},
            "artefacts": [artefact_entry("screenshot.png", "image/png", SHOT),
                          artefact_entry("capture.warc.gz", "application/warc", WARC)]}
    return sign_manifest(body, key), key


def test_round_trip(signed: tuple[bytes, Ed25519PrivateKey]) -> None:
    data, key = signed
    m = verify_manifest(data, {"screenshot.png": SHOT, "capture.warc.gz": WARC}, {key_id(key.public_key())})
    assert m["format"] == "evidence-capture-manifest/v1" and data == rfc8785.dumps(m)
    entry = m["artefacts"][0]
    assert entry["sha256"] == hashlib.sha256(SHOT).hexdigest() and entry["sm3"] == hashlib.new("sm3", SHOT).hexdigest()
    # SM3 test vector (GB/T 32905-2016 A.1) through the same path
    assert artefact_entry("abc", "x", b"abc")["sm3"] == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")


def test_artefact_mismatch_is_named(signed: tuple[bytes, Ed25519PrivateKey]) -> None:
    data, _ = signed
    with pytest.raises(ManifestError, match=r"screenshot.png: size got 3, want"):
        verify_manifest(data, {"screenshot.png": b"abc"})
    with pytest.raises(ManifestError, match=r"screenshot.png: sha256 got"):
        verify_manifest(data, {"screenshot.png": SHOT[:-1] + b"!"})
    with pytest.raises(ManifestError, match=r"other\.bin: not listed"):
        verify_manifest(data, {"other.bin": b""})


def test_tampered_manifest_fails(signed: tuple[bytes, Ed25519PrivateKey]) -> None:
    data, _ = signed
    m = json.loads(data)
    m["url"] = "https://example.org/"
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(rfc8785.dumps(m))
    with pytest.raises(ManifestError, match="canonical"):
        verify_manifest(json.dumps(json.loads(data), indent=1).encode())
    other = Ed25519PrivateKey.generate()
    m = json.loads(data)
    m["signature"]["public_key"] = base64.b64encode(other.public_key().public_bytes_raw()).decode()
    with pytest.raises(ManifestError, match="key id"):
        verify_manifest(rfc8785.dumps(m))
    with pytest.raises(ManifestError, match="not a trusted capture key"):
        verify_manifest(data, trusted_key_ids={"0" * 16})
    for bad in (b"not json", b"[]", b'{"format": "x"}'):
        with pytest.raises(ManifestError):
            verify_manifest(bad)


def test_body_with_signature_is_refused() -> None:
    with pytest.raises(ManifestError):
        sign_manifest({"signature": {}}, Ed25519PrivateKey.generate())
