"""The signed capture manifest (`evidence-capture-manifest/v1`): what a web capture produced and how.

The manifest is RFC 8785 (JCS) canonical JSON, so anyone can recompute the bytes that were signed:

    { "format": "evidence-capture-manifest/v1",
      "capture_id", "url", "final_url", "title", "status", "engine", "operator", "depositor",
      "started_at", "finished_at",                     RFC 3339 UTC, the machine's clock
      "environment": {...}, "policy": {...},           browser, UA, viewport, proxy, fetch policy
      "artefacts": [{"name", "content_type", "size", "sha256", "sm3"}, ...],
      "requests": [{url, method, status, resolved_ip, response_headers, ...} | {url, refused}, ...],
      "refused": [{"url", "reason"}, ...], "resolved_addresses": {host: [ip, ...]},
      "timing": {...}, "notes": [...],
      "signature": {"alg": "Ed25519", "key_id": <16 hex of SHA-256(public key)>,
                    "public_key": <base64 raw 32 bytes>, "value": <base64 signature>} }

`signature.value` signs the JCS bytes of the manifest without its `signature` member. The manifest is
deposited beside its artefacts (one matter), so the log's checkpoint, witnesses and TSA vouch for its
time; the signature says which capture service produced it.

Pure: no I/O. `sign_manifest` builds, `parse_manifest` parses, `verify_manifest` checks the signature
and the artefacts given against the listed hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.errors import EvidenceError

__all__ = ["FORMAT", "ManifestError", "artefact_entry", "key_id", "parse_manifest", "sign_manifest",
           "verify_manifest"]

FORMAT = "evidence-capture-manifest/v1"


class ManifestError(EvidenceError):
    """A capture manifest that does not parse, or whose signature or artefacts do not verify."""


def artefact_entry(name: str, content_type: str, data: bytes) -> dict[str, Any]:
    """One artefact line: name, type, size and both digests (SM3 from OpenSSL via hashlib)."""
    return {"name": name, "content_type": content_type, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "sm3": hashlib.new("sm3", data).hexdigest()}


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(pub)).hexdigest()[:16]


def sign_manifest(body: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The canonical bytes of `body` plus its signature member (`body` must not have one)."""
    if "signature" in body:
        raise ManifestError("the manifest body already has a signature")
    unsigned = {"format": FORMAT, **body}
    sig = key.sign(rfc8785.dumps(unsigned))
    pub = key.public_key()
    signed = {**unsigned, "signature": {"alg": "Ed25519", "key_id": key_id(pub),
                                        "public_key": base64.b64encode(_raw_public(pub)).decode(),
                                        "value": base64.b64encode(sig).decode()}}
    return rfc8785.dumps(signed)


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse (not verify): JSON object of our format, canonical as signed."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"the capture manifest is not JSON: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ManifestError(f"not an {FORMAT} manifest")
    if not isinstance(obj.get("artefacts"), list) or not isinstance(obj.get("signature"), dict):
        raise ManifestError("the manifest has no artefact list or no signature")
    return obj


def verify_manifest(data: bytes, artefacts: Mapping[str, bytes] | None = None,
                    trusted_key_ids: set[str] | None = None) -> dict[str, Any]:
    """Check the signature, and each artefact given (by name) against its listed size, SHA-256 and SM3.

    Requires: `data` is the manifest as deposited. Returns the parsed manifest; raises ManifestError
    naming the first failure ("artefact X: sha256 got A, want B").
    """
    m = parse_manifest(data)
    if rfc8785.dumps(m) != data:
        raise ManifestError("the manifest is not in its canonical (RFC 8785) form")
    sig = m["signature"]
    try:
        raw_pub = base64.b64decode(sig["public_key"], validate=True)
        value = base64.b64decode(sig["value"], validate=True)
        pub = Ed25519PublicKey.from_public_bytes(raw_pub)
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise ManifestError(f"the manifest's signature member is malformed: {e}") from e
    if sig.get("alg") != "Ed25519" or sig.get("key_id") != key_id(pub):
        raise ManifestError("the manifest's signature names another algorithm or key id")
    if trusted_key_ids is not None and sig["key_id"] not in trusted_key_ids:
        raise ManifestError(f"the manifest is signed by key {sig['key_id']}, not a trusted capture key")
    unsigned = {k: v for k, v in m.items() if k != "signature"}
    try:
        pub.verify(value, rfc8785.dumps(unsigned))
    except InvalidSignature as e:
        raise ManifestError("the manifest's signature does not verify") from e
    listed = {a.get("name"): a for a in m["artefacts"] if isinstance(a, dict)}
    for name, blob in (artefacts or {}).items():
        want = listed.get(name)
        if want is None:
            raise ManifestError(f"artefact {name}: not listed in the manifest")
        got = artefact_entry(name, str(want.get("content_type")), blob)
        for field in ("size", "sha256", "sm3"):
            if got[field] != want.get(field):
                raise ManifestError(f"artefact {name}: {field} got {got[field]}, want {want.get(field)}")
    return m
