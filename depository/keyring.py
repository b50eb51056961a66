"""Every key of a home, where it lives and how to recognise it (`depository keys`).

Reads public parts only: fingerprints come from the published verifier key, public key or certificate,
never from a private key, so listing a home whose log key is in a PKCS#11 token needs no PIN. Secret
symmetric keys (master key, checkpoint-chain key) are listed by location and mode only.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from depository.config import Config
from depository.errors import DepositoryError
from depository.hsm import LOG_KEY, read_token_file
from evidence.errors import EvidenceError
from evidence.note import Ed25519Verifier

__all__ = ["list_keys"]


def _file(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return f"file:{path} (missing)"
    return f"file:{path} (mode {mode:04o})"


def _cert_entry(role: str, key_path: Path, cert_path: Path, published: str) -> dict[str, Any] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {"key": role, "algorithm": cert.signature_algorithm_oid._name,
            "fingerprint": "sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            "public_key_sha256": hashlib.sha256(spki).hexdigest(),
            "subject": cert.subject.rfc4514_string(), "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "location": _file(key_path),
            "published": published}


def list_keys(config: Config) -> list[dict[str, Any]]:
    """One entry per key: key, algorithm, fingerprint, location (file:PATH (mode) or a PKCS#11 URI)."""
    from depository.packets import packet_material
    from notary_bridge.tsa_server import tsa_material

    kd = config.keys_dir
    out: list[dict[str, Any]] = []
    try:
        v = Ed25519Verifier.from_vkey((kd / "log.vkey").read_text().strip())
        token = read_token_file(kd)
        where = (token[0].uri(token[1].get(LOG_KEY, {}).get("label", LOG_KEY)) + f" (module {token[0].module})"
                 if token else _file(kd / "log.skey"))
        out.append({"key": "log-ed25519", "algorithm": "Ed25519", "fingerprint": f"{v.name}+{v.key_id:08x}",
                    "public_key_sha256": hashlib.sha256(v.public_key).hexdigest(), "location": where,
                    "published": "GET /v1/log/keys log_vkey; keys/log.vkey"})
    except (OSError, EvidenceError, DepositoryError) as e:  # a broken home is listed, not a traceback
        out.append({"key": "log-ed25519", "error": str(e)[:200]})
    try:
        _, _, spki = pem.unarmor((kd / "log-sm2.pem").read_bytes())  # cryptography cannot load SM2 keys
        out.append({"key": "log-sm2", "algorithm": "SM2 (SM3)",
                    "fingerprint": "sha256:" + hashlib.sha256(spki).hexdigest(),
                    "location": _file(kd / "log-sm2-key.pem") + " (SoftHSM has no SM2 mechanism)",
                    "published": "GET /v1/log/keys log_sm2_public_key_pem; keys/log-sm2.pem"})
    except (OSError, ValueError) as e:
        out.append({"key": "log-sm2", "error": str(e)[:200]})
    tsa = tsa_material(config.home)
    entry = _cert_entry("tsa", tsa.key_path, tsa.cert_path, "GET /v1/log/keys tsa_ca_pem (root)")
    if entry:
        out.append(entry)
    pm = packet_material(config.home)
    entry = _cert_entry("packet-signer", pm.key_path, pm.cert_path,
                        "packet/packet-ca.pem (root); signer-chain.pem in every packet")
    if entry:
        out.append(entry)
    for name, what in (("master.key", "master (wraps tenants' content keys, AES-KW)"),
                       ("checkpoint-chain.key", "checkpoint-chain (HMAC over stored checkpoints)")):
        if (kd / name).exists():
            out.append({"key": what.split(" ")[0], "algorithm": what.split(" ", 1)[1].strip("()"),
                        "fingerprint": None, "location": _file(kd / name), "published": None})
    return out
