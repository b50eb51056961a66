"""Keys inside a PKCS#11 token (python-pkcs11): the log's checkpoint key, signing with CKM_EDDSA.

A home whose log key lives in a token has `keys/pkcs11.json` instead of `keys/log.skey`:

    {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "depository",
     "keys": {"log-ed25519": {"label": "log-ed25519", "id": "<hex CKA_ID>"}}}

and the published `keys/log.vkey` as before. The token's user PIN is never a flag, never in config.toml
and never logged: it comes from `DEPOSITORY_PKCS11_PIN` or from the file named by
`DEPOSITORY_PKCS11_PIN_FILE` (the systemd way: `LoadCredential=` and a 0400 file).

Private keys are generated inside the token (CKA_SENSITIVE, not CKA_EXTRACTABLE) and never leave it; the
public key is read once and checked against `log.vkey`, so a token holding another key is refused
before it signs anything. A PKCS#11 session does not survive fork(): each process opens its own on first
use, and one lock serialises the operations of a session (PKCS#11 allows one at a time).

SM2 stays a file key: SoftHSM (and most tokens) have no SM2 mechanism (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depository.errors import ConfigError
from evidence.errors import EvidenceError
from evidence.note import ALG_ED25519, Ed25519Verifier, compute_key_id, is_valid_name

__all__ = ["PIN_ENV", "PIN_FILE_ENV", "PKCS11_FILE", "Pkcs11Ed25519Signer", "TokenRef", "read_pin"]

PKCS11_FILE = "pkcs11.json"
PIN_ENV = "DEPOSITORY_PKCS11_PIN"
PIN_FILE_ENV = "DEPOSITORY_PKCS11_PIN_FILE"
LOG_KEY = "log-ed25519"
#: RFC 8410 id-Ed25519, as CKA_EC_PARAMS names the curve (PKCS#11 3.0 §2.3.10).
ED25519_OID = "1.3.101.112"


@dataclass(frozen=True)
class TokenRef:
    """Which token: the PKCS#11 module (a shared library) and the token's label."""

    module: str
    token: str

    def uri(self, label: str | None = None) -> str:
        """An RFC 7512 PKCS#11 URI naming the token (and the object)."""
        out = f"pkcs11:token={_pct(self.token)}"
        return out + (f";object={_pct(label)}" if label else "")


def _pct(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


def read_pin(env: Mapping[str, str] | None = None) -> str:
    """The user PIN from DEPOSITORY_PKCS11_PIN or the file in DEPOSITORY_PKCS11_PIN_FILE (one of them)."""
    env = os.environ if env is None else env
    if env.get(PIN_ENV):
        return env[PIN_ENV]
    path = env.get(PIN_FILE_ENV)
    if path:
        try:
            pin = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{PIN_FILE_ENV}={path}: {e.strerror or e}") from e
        if pin:
            return pin
        raise ConfigError(f"{PIN_FILE_ENV}={path} is empty")
    raise ConfigError(f"the key is in a PKCS#11 token: set {PIN_ENV} or {PIN_FILE_ENV} to its user PIN")


class _Open:
    """One process's session on one token, shared by every `Token` handle (PKCS#11 logs in per process:
    a second C_Login is CKR_USER_ALREADY_LOGGED_IN), and the lock that serialises its operations."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # reentrant: sign() holds it while private_key() opens the session
        self.session: Any = None
        self.pid = 0


_OPEN: dict[tuple[str, str], _Open] = {}
_OPEN_LOCK = threading.Lock()


class Token:
    """A handle on one token: its session is opened on first use in each process (reopened after fork)."""

    def __init__(self, ref: TokenRef, pin: str) -> None:
        self.ref = ref
        self._pin = pin
        module = str(Path(ref.module).resolve())  # python-pkcs11 loads a module once, by one path
        with _OPEN_LOCK:
            self._open = _OPEN.setdefault((module, ref.token), _Open())
        self._module = module

    @property
    def lock(self) -> threading.RLock:
        return self._open.lock

    def session(self) -> Any:
        """The process's session (python-pkcs11 Session); callers hold `self.lock`."""
        o = self._open
        if o.session is None or o.pid != os.getpid():
            import pkcs11
            from pkcs11 import exceptions as px

            try:
                lib = pkcs11.lib(self._module)
                token = lib.get_token(token_label=self.ref.token)
                o.session = token.open(user_pin=self._pin, rw=True)
            except (px.PinIncorrect, px.PinInvalid, px.PinLenRange, px.PinLocked, px.PinExpired) as e:
                raise ConfigError(f"PKCS#11 token {self.ref.token!r}: the PIN was refused "
                                  f"({type(e).__name__})") from None
            except px.NoSuchToken:
                raise ConfigError(f"PKCS#11 module {self.ref.module}: no token labelled {self.ref.token!r}") from None
            except px.PKCS11Error as e:
                raise ConfigError(f"PKCS#11 token {self.ref.token!r}: {type(e).__name__}") from None
            except (RuntimeError, OSError) as e:  # the module does not load
                raise ConfigError(f"PKCS#11 module {self.ref.module}: {type(e).__name__} {e}") from None
            o.pid = os.getpid()
        return o.session

    def private_key(self, label: str) -> Any:
        from pkcs11 import KeyType, ObjectClass
        from pkcs11 import exceptions as px

        try:
            return self.session().get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC_EDWARDS,
                                          label=label)
        except (px.NoSuchKey, px.MultipleObjectsReturned) as e:
            raise ConfigError(f"{self.ref.uri(label)}: {type(e).__name__}") from None

    def ed25519_public(self, label: str) -> bytes:
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11 import exceptions as px

        with self.lock:
            try:
                pub = self.session().get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC_EDWARDS,
                                             label=label)
            except (px.NoSuchKey, px.MultipleObjectsReturned) as e:
                raise ConfigError(f"{self.ref.uri(label)}: public key {type(e).__name__}") from None
            return _ed25519_point(bytes(pub[Attribute.EC_POINT]))

    def generate_ed25519(self, label: str) -> tuple[bytes, bytes]:
        """A new Ed25519 key pair inside the token (private part sensitive, not extractable): (id, public)."""
        from pkcs11 import Attribute, KeyType, Mechanism
        from pkcs11.util.ec import encode_named_curve_parameters

        key_id = os.urandom(8)
        with self.lock:
            s = self.session()
            params = s.create_domain_parameters(
                KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)}, local=True)
            pub, _ = params.generate_keypair(
                store=True, label=label, id=key_id, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                  Attribute.SIGN: True})
            return key_id, _ed25519_point(bytes(pub[Attribute.EC_POINT]))

    def close(self) -> None:
        """Close the process's session on this token (every handle's); the next use opens a new one."""
        o = self._open
        with o.lock:
            if o.session is not None and o.pid == os.getpid():
                o.session.close()
            o.session = None


def _ed25519_point(ec_point: bytes) -> bytes:
    """CKA_EC_POINT of an Edwards key: DER OCTET STRING of the 32 bytes (some tokens give them raw)."""
    if len(ec_point) == 34 and ec_point[:2] == b"\x04\x20":
        return ec_point[2:]
    if len(ec_point) == 32:
        return ec_point
    raise ConfigError(f"token returned an Ed25519 public key of {len(ec_point)} bytes")


@dataclass
class Pkcs11Ed25519Signer:
    """A note signer (evidence.note.Signer) whose Ed25519 key is in a token; signs with CKM_EDDSA."""

    name: str
    token: Token
    label: str
    public_key: bytes
    where: str = field(default="")

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise ConfigError(f"invalid key name {self.name!r}")
        self.where = self.token.ref.uri(self.label)

    def public_bytes(self) -> bytes:
        return self.public_key

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, ALG_ED25519 + self.public_key)

    def sign(self, msg: bytes) -> bytes:
        from pkcs11 import Mechanism

        with self.token.lock:
            return bytes(self.token.private_key(self.label).sign(msg, mechanism=Mechanism.EDDSA))

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public_key)


def write_token_file(keys_dir: Path, ref: TokenRef, keys: dict[str, dict[str, str]]) -> None:
    from notary_bridge.serving import write_atomic

    body = {"module": ref.module, "token": ref.token, "keys": keys}
    write_atomic(keys_dir / PKCS11_FILE, (json.dumps(body, indent=2) + "\n").encode(), 0o644)


def read_token_file(keys_dir: Path) -> tuple[TokenRef, dict[str, dict[str, str]]] | None:
    path = keys_dir / PKCS11_FILE
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return TokenRef(str(obj["module"]), str(obj["token"])), dict(obj["keys"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a PKCS#11 key file ({e})") from e


def init_token_log_key(keys_dir: Path, origin: str, ref: TokenRef, pin: str) -> Pkcs11Ed25519Signer:
    """Generate the log's Ed25519 key in the token and write pkcs11.json and log.vkey (a new home only)."""
    if (keys_dir / "log.skey").exists() or (keys_dir / PKCS11_FILE).exists():
        raise ConfigError(f"{keys_dir} already has a log key: a new checkpoint key means a new log "
                          "(see 'Rotating the checkpoint key' in docs/deploy.md)")
    keys_dir.mkdir(parents=True, exist_ok=True)
    token = Token(ref, pin)
    try:
        key_id, public = token.generate_ed25519(LOG_KEY)
    finally:
        token.close()
    signer = Pkcs11Ed25519Signer(origin, Token(ref, pin), LOG_KEY, public)
    write_token_file(keys_dir, ref, {LOG_KEY: {"label": LOG_KEY, "id": key_id.hex()}})
    (keys_dir / "log.vkey").write_text(signer.verifier().to_vkey() + "\n")
    return signer


def load_token_log_key(keys_dir: Path, origin: str, env: Mapping[str, str] | None = None
                       ) -> Pkcs11Ed25519Signer | None:
    """The log's token signer when the home has pkcs11.json (None otherwise); checked against log.vkey."""
    found = read_token_file(keys_dir)
    if found is None:
        return None
    ref, keys = found
    label = keys.get(LOG_KEY, {}).get("label")
    if not label:
        raise ConfigError(f"{keys_dir / PKCS11_FILE}: no {LOG_KEY} key")
    token = Token(ref, read_pin(env))
    signer = Pkcs11Ed25519Signer(origin, token, label, token.ed25519_public(label))
    try:
        published = Ed25519Verifier.from_vkey((keys_dir / "log.vkey").read_text().strip())
    except (OSError, EvidenceError) as e:
        raise ConfigError(f"{keys_dir / 'log.vkey'} cannot be read: {e}") from e
    if published.name != origin:
        raise ConfigError(f"the log key in {keys_dir} is for origin {published.name!r}, not {origin!r}")
    if published.public_key != signer.public_key:
        raise ConfigError(f"{signer.where} holds another key than {keys_dir / 'log.vkey'}: refusing to sign")
    return signer
