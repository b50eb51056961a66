"""The log's signing keys, kept in `$DEPOSITORY_HOME/keys/` (created by `depository init`).

    log.skey          Ed25519 signer key (sumdb/note text), mode 0600
    log.vkey          its verifier key, published
    log-sm2-key.pem   SM2 private key (PKCS#8, as `openssl genpkey -algorithm SM2` writes), mode 0600
    log-sm2.pem       SM2 public key (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes), published

    pkcs11.json       instead of log.skey when the Ed25519 key is in a PKCS#11 token (depository/hsm.py)

The key name of both is the log's origin (SPEC.md), so a checkpoint carries two signature lines under
one name: Ed25519 for international verifiers, SM2/SM3 for national ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from depository.errors import ConfigError
from evidence.note import Ed25519Signer, SM2Signer, generate_ed25519, sign_note
from evidence.sm2 import SM2PrivateKey
from notary_bridge.serving import write_atomic

if TYPE_CHECKING:
    from depository.hsm import Pkcs11Ed25519Signer


def write_secret(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (never world-readable, not even briefly), atomically."""
    write_atomic(path, data, 0o600)


@dataclass(frozen=True)
class LogKeys:
    ed25519: Ed25519Signer | Pkcs11Ed25519Signer
    sm2: SM2Signer

    @property
    def origin(self) -> str:
        return self.ed25519.name

    def sign(self, body: str) -> str:
        """The signed note: body, blank line, Ed25519 line, SM2 line."""
        return sign_note(body, [self.ed25519, self.sm2])

    @property
    def vkey(self) -> str:
        return self.ed25519.verifier().to_vkey()

    @property
    def sm2_vkey(self) -> str:
        return self.sm2.verifier().to_vkey()

    @property
    def sm2_public_pem(self) -> str:
        return self.sm2.private_key.public_key().to_pem()


def init_log_keys(keys_dir: Path, origin: str) -> LogKeys:
    """Create the log's keys if missing (idempotent); refuse a home whose keys name another origin."""
    from depository.hsm import PKCS11_FILE

    skey_path = keys_dir / "log.skey"
    sm2_path = keys_dir / "log-sm2-key.pem"
    if not skey_path.exists() and not (keys_dir / PKCS11_FILE).exists():
        skey, vkey = generate_ed25519(origin)
        write_secret(skey_path, skey.encode())
        (keys_dir / "log.vkey").write_text(vkey + "\n")
    if not sm2_path.exists():
        key = SM2PrivateKey.generate()
        write_secret(sm2_path, key.to_pem().encode())
        (keys_dir / "log-sm2.pem").write_text(key.public_key().to_pem())
    return load_log_keys(keys_dir, origin)


def load_log_keys(keys_dir: Path, origin: str) -> LogKeys:
    """The home's log keys: Ed25519 from `log.skey` or, with `pkcs11.json`, from the token (PIN from the
    environment, depository/hsm.py); SM2 always from its file."""
    from depository.hsm import load_token_log_key

    ed: Ed25519Signer | Pkcs11Ed25519Signer | None = load_token_log_key(keys_dir, origin)
    try:
        if ed is None:
            ed = Ed25519Signer.from_skey((keys_dir / "log.skey").read_text().strip())
        sm2 = SM2PrivateKey.from_pem((keys_dir / "log-sm2-key.pem").read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(f"log keys missing in {keys_dir}: run 'depository init'") from e
    if ed.name != origin:
        raise ConfigError(f"the log key in {keys_dir} is for origin {ed.name!r}, not {origin!r}")
    return LogKeys(ed, SM2Signer(origin, sm2))
