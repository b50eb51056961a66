"""The proof bundle (SPEC.md "Proof bundle"): JSON carrying everything needed to check one deposit offline.

`ProofBundle.to_json()` / `ProofBundle.from_json()` round-trip; parsing checks shapes only. Verification
lives in `evidence.verify`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from evidence.errors import FormatError

BUNDLE_FORMAT = "evidence-proof/v1"


def _b64d(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"proof bundle: {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"proof bundle: {what} is not valid base64") from e


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class ProofBundle:
    deposit_id: str
    leaf_data: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: list[bytes]
    checkpoint: str
    tlog_proof: str
    log_vkey: str
    log_sm2_public_key_pem: str
    witness_policy: str | None = None
    timestamp_token: bytes | None = None
    timestamp_ca_pem: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "deposit_id": self.deposit_id,
            "leaf_data": _b64e(self.leaf_data),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_proof": [_b64e(h) for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
            "tlog_proof": self.tlog_proof,
            "log_vkey": self.log_vkey,
            "log_sm2_public_key_pem": self.log_sm2_public_key_pem,
            "witness_policy": self.witness_policy,
            "timestamp_token": _b64e(self.timestamp_token) if self.timestamp_token is not None else None,
            "timestamp_ca_pem": self.timestamp_ca_pem,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, obj: Any) -> ProofBundle:
        if not isinstance(obj, dict) or obj.get("format") != BUNDLE_FORMAT:
            raise FormatError(f"not a proof bundle: want format {BUNDLE_FORMAT!r}")
        try:
            proof = obj["inclusion_proof"]
            if not isinstance(proof, list):
                raise FormatError("proof bundle: inclusion_proof must be a list")
            for key in ("leaf_index", "tree_size"):
                if not isinstance(obj[key], int) or isinstance(obj[key], bool) or obj[key] < 0:
                    raise FormatError(f"proof bundle: {key} must be a non-negative integer")
            for key in ("deposit_id", "checkpoint", "tlog_proof", "log_vkey", "log_sm2_public_key_pem"):
                if not isinstance(obj[key], str):
                    raise FormatError(f"proof bundle: {key} must be a string")
            metadata = obj.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise FormatError("proof bundle: metadata must be an object")
            token = obj.get("timestamp_token")
            return cls(
                deposit_id=obj["deposit_id"],
                leaf_data=_b64d(obj["leaf_data"], "leaf_data"),
                leaf_index=obj["leaf_index"],
                tree_size=obj["tree_size"],
                inclusion_proof=[_b64d(h, f"inclusion_proof[{i}]") for i, h in enumerate(proof)],
                checkpoint=obj["checkpoint"],
                tlog_proof=obj["tlog_proof"],
                log_vkey=obj["log_vkey"],
                log_sm2_public_key_pem=obj["log_sm2_public_key_pem"],
                witness_policy=obj.get("witness_policy"),
                timestamp_token=_b64d(token, "timestamp_token") if token is not None else None,
                timestamp_ca_pem=obj.get("timestamp_ca_pem"),
                metadata=metadata,
            )
        except KeyError as e:
            raise FormatError(f"proof bundle: missing field {e.args[0]}") from e
