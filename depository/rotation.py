"""Key rotation without breaking old evidence (`depository keys rotate tsa|packet|master`).

A rotated key's private part is destroyed (the file is replaced; for a TSA or a packet signer nobody
should be able to make "old" evidence later), its public part is kept forever: `keys/history.json`
lists every retired key with its certificate, root and validity period, and `GET /v1/log/keys` publishes
it as `key_history`, so a verifier can check a packet or token made before the rotation.

* **tsa** -- a new root and TSA certificate (the demo CA's private key is never kept, so the root is new
  too). `tsa/tsa-ca.pem` becomes the bundle of every TSA root, newest first: the notary, `depository
  audit`, packets and `openssl ts -verify -CAfile` keep accepting old tokens. The TSA serves its newest
  certificate only (`load_core` embeds only its issuer); restart `depository tsa serve` to use it.
* **packet** -- a new packet root, signer certificate and CRL; `packet/packet-ca.pem` stays the current
  root alone (it goes into every new packet's signer chain); old roots are in the history and in
  `packet/packet-ca-all.pem` (every root, for `depository verify --trust` and pdfsig's NSS database).
* **master** -- a new content master key; every tenant's content key is re-wrapped in one transaction
  (the encrypted files are not touched: they are encrypted under the tenants' keys). The old master key
  stays as `master.key.retired-<time>` until the operator destroys it after a backup cycle, since backups
  of the database made before the rotation still need it.

Checkpoint-key rotation is not here: the key names the log, so a new key is a new log (docs/deploy.md).
Witness keys belong to the witnesses' own homes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, select, update

from depository.errors import ConfigError
from depository.models import TenantRow
from notary_bridge import pki
from notary_bridge.serving import write_atomic

__all__ = ["HISTORY_FILE", "load_history", "rotate_master", "rotate_packet", "rotate_tsa"]

HISTORY_FILE = "history.json"
ROLES = ("tsa", "packet", "master")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def load_history(keys_dir: Path) -> list[dict[str, Any]]:
    """Every retired key, oldest first ([] for a home that never rotated)."""
    path = keys_dir / HISTORY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from e
    return list(data.get("retired", []))


def _append_history(keys_dir: Path, entry: dict[str, Any]) -> None:
    items = [*load_history(keys_dir), entry]
    write_atomic(keys_dir / HISTORY_FILE, (json.dumps({"retired": items}, indent=2) + "\n").encode(), 0o644)


def _cert_entry(role: str, cert_pem: bytes, root_pem: bytes, retired_at: dt.datetime) -> dict[str, Any]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return {"role": role, "subject": cert.subject.rfc4514_string(),
            "fingerprint": "sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            "valid_from": cert.not_valid_before_utc.isoformat(), "valid_until": retired_at.isoformat(),
            "certificate_not_after": cert.not_valid_after_utc.isoformat(),
            "certificate_pem": cert_pem.decode(), "root_pem": root_pem.decode()}


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def rotate_tsa(home: Path, name: str = "Depository TSA") -> dict[str, Any]:
    """New TSA root and certificate; the old certificate and root kept (history, CA bundle)."""
    from notary_bridge.tsa_server import tsa_material

    m = tsa_material(home)
    if not m.all_exist():
        raise ConfigError(f"no TSA material in {m.key_path.parent} to rotate")
    now = _now()
    old_cert, old_bundle = m.cert_path.read_bytes(), m.ca_path.read_bytes()
    issuer = x509.load_pem_x509_certificate(old_cert).issuer
    old_root = b"".join(c.public_bytes(Encoding.PEM) for c in x509.load_pem_x509_certificates(old_bundle)
                        if c.subject == issuer)
    entry = _cert_entry("tsa", old_cert, old_root, now)
    ca_key, ca_cert = pki.make_ca(f"{name} Root CA {now.year}")
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, f"{name} {_stamp(now)}")
    # History first: a crash after it leaves the old key in place (rotate again), never a lost old root.
    _append_history(home / "keys", entry)
    write_atomic(m.ca_path, ca_cert + old_bundle, 0o644)
    write_atomic(m.cert_path, cert, 0o644)
    write_atomic(m.key_path, key, 0o600)  # the old private key is gone with the replaced file
    return {"rotated": "tsa", "retired": entry["fingerprint"], "new": _cert_entry("tsa", cert, ca_cert, now)
            ["fingerprint"], "restart": "depository tsa serve (it loads its key at start)"}


def rotate_packet(home: Path, name: str = "Evidence Depository") -> dict[str, Any]:
    """New packet root, signer certificate and CRL; the old certificate and root kept."""
    from depository.packets import packet_material

    m = packet_material(home)
    if not m.all_exist():
        raise ConfigError(f"no packet material in {m.ca_path.parent} to rotate")
    now = _now()
    old_cert, old_root = m.cert_path.read_bytes(), m.ca_path.read_bytes()
    entry = _cert_entry("packet", old_cert, old_root, now)
    all_path = m.ca_path.parent / "packet-ca-all.pem"
    old_all = all_path.read_bytes() if all_path.exists() else old_root
    ca_key, ca_cert = pki.make_ca(f"{name} Packet Root CA {now.year}")
    key, cert = pki.make_signer_cert(ca_key, ca_cert, f"{name} Evidence Packet Signer {_stamp(now)}")
    crl = pki.make_crl(ca_key, ca_cert)
    _append_history(home / "keys", entry)
    write_atomic(all_path, ca_cert + old_all, 0o644)
    write_atomic(m.crl_path, crl, 0o644)
    write_atomic(m.ca_path, ca_cert, 0o644)
    write_atomic(m.cert_path, cert, 0o644)
    write_atomic(m.key_path, key, 0o600)
    return {"rotated": "packet", "retired": entry["fingerprint"],
            "new": _cert_entry("packet", cert, ca_cert, now)["fingerprint"]}


def rotate_master(keys_dir: Path, engine: Engine) -> dict[str, Any]:
    """New master key; every tenant's content key re-wrapped under it in one transaction."""
    import os

    path = keys_dir / "master.key"
    try:
        old = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from e
    new = os.urandom(len(old))
    now = _now()
    staged = keys_dir / "master.key.new"
    write_atomic(staged, new, 0o600)  # if the transaction fails, this is removed and nothing changed
    rewrapped = 0
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(TenantRow.id, TenantRow.wrapped_content_key)
                                .where(TenantRow.wrapped_content_key.is_not(None))).all()
            for r in rows:
                plain = aes_key_unwrap(old, bytes(r.wrapped_content_key))
                conn.execute(update(TenantRow).where(TenantRow.id == r.id)
                             .values(wrapped_content_key=aes_key_wrap(new, plain)))
                rewrapped += 1
            # Inside the transaction: the new key is in place before the commit makes it needed; if the
            # commit fails, the handler below puts the old key back. Run it with intake stopped
            # (docs/deploy.md): a tenant created meanwhile could be wrapped under the old key.
            retired = keys_dir / f"master.key.retired-{_stamp(now)}"
            write_atomic(retired, old, 0o600)
            os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        if path.read_bytes() == new:
            write_atomic(path, old, 0o600)
        raise
    _append_history(keys_dir, {"role": "master", "retired_at": now.isoformat(), "location": str(retired),
                               "fingerprint": None, "tenants_rewrapped": rewrapped})
    return {"rotated": "master", "tenants_rewrapped": rewrapped, "retired_key": str(retired)}


def published_keys(home: Path) -> dict[str, Any]:
    """For GET /v1/log/keys: the packet root, the current TSA and packet certificates with their validity
    (`valid_until` null: in use) and every retired key (`key_history`, with certificate and root PEMs)."""
    from depository.packets import packet_material
    from notary_bridge.tsa_server import tsa_material

    history = [h for h in load_history(home / "keys") if h.get("role") != "master"]
    current = []
    pm, tm = packet_material(home), tsa_material(home)
    for role, cert_path in (("tsa", tm.cert_path), ("packet", pm.cert_path)):
        try:
            cert_pem = cert_path.read_bytes()
        except OSError:
            continue
        cert = x509.load_pem_x509_certificate(cert_pem)
        current.append({"role": role, "subject": cert.subject.rfc4514_string(),
                        "fingerprint": "sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
                        "valid_from": cert.not_valid_before_utc.isoformat(), "valid_until": None,
                        "certificate_not_after": cert.not_valid_after_utc.isoformat(),
                        "certificate_pem": cert_pem.decode()})
    try:
        packet_ca = pm.ca_path.read_text()
    except OSError:
        packet_ca = None
    return {"packet_ca_pem": packet_ca, "current_keys": current, "key_history": history}
