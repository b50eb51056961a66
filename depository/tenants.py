"""Tenants (platforms, law firms, rights holders) and their API keys.

An API key is `dpk_<key id>_<secret>`: 128-bit id, 256-bit secret. Only SHA-256 of the secret is stored:
the secret is high-entropy random, so a fast hash is the right tool (a password hash like argon2 would
cost milliseconds per request for no gain). Keys are shown once, scoped, and revocable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from depository.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthorized
from depository.models import ApiKeyRow, TenantRow
from depository.throttle import Rule, Throttle

SCOPES = ("deposit", "read", "proof", "admin")
DEFAULT_SCOPES = ("deposit", "read", "proof")
KEY_RE = re.compile(r"^dpk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
CACHE_TTL_S = 2.0  # a revoked key stops working in other processes within this many seconds
MAX_CACHED_KEYS = 10_000
MAX_KEY_FAILURES_PER_ADDRESS = 100
KEY_ADDRESS_RULE = Rule("api-key-address", MAX_KEY_FAILURES_PER_ADDRESS, timedelta(minutes=15))


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_id: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"this API key lacks the '{scope}' scope")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant_id: str
    scopes: tuple[str, ...]
    label: str
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {"key_id": self.key_id, "tenant_id": self.tenant_id, "scopes": list(self.scopes),
                "label": self.label, "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _check_scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise BadRequest(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(bad) or 'none'}")
    return tuple(dict.fromkeys(scopes))


class Tenants:
    def __init__(self, engine: Engine, *, wrap_content_key: object = None) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal | None, bytes]] = {}
        self._rows: dict[str, tuple[float, TenantRow]] = {}
        self._lock = threading.Lock()
        self._locked: dict[str, float] = {}  # client address -> monotonic time its refusal ends
        self.throttle = Throttle(engine)

    def create(self, name: str, *, store_content: bool = False, cipher: str = "aes-256-gcm",
               wrapped_content_key: bytes | None = None, scopes: tuple[str, ...] = DEFAULT_SCOPES,
               ) -> tuple[str, str]:
        """Create a tenant and its first API key; returns (tenant_id, api_key). The key is shown once."""
        name = name.strip()
        if not name or len(name) > 255:
            raise BadRequest("tenant name must be 1 to 255 characters")
        tenant_id = "t_" + secrets.token_hex(8)
        with self.engine.begin() as conn:
            conn.execute(insert(TenantRow).values(
                id=tenant_id, name=name, created_at=datetime.now(UTC), store_content=store_content,
                content_cipher=cipher, wrapped_content_key=wrapped_content_key))
        api_key = self.create_key(tenant_id, scopes)
        return tenant_id, api_key

    def get(self, tenant_id: str) -> TenantRow:
        with self.engine.connect() as conn:
            row = conn.execute(select(TenantRow).where(TenantRow.id == tenant_id)).first()
        if row is None:
            raise NotFound(f"no tenant {tenant_id}")
        return row  # type: ignore[return-value]

    def cached(self, tenant_id: str) -> TenantRow:
        """`get`, remembered for CACHE_TTL_S (as API keys are): the upload path reads the tenant's content
        settings on every file deposit, and they change rarely."""
        now = time.monotonic()
        with self._lock:
            hit = self._rows.get(tenant_id)
        if hit is not None and now - hit[0] <= CACHE_TTL_S:
            return hit[1]
        row = self.get(tenant_id)
        with self._lock:
            self._rows[tenant_id] = (now, row)
        return row

    def all(self) -> list[TenantRow]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(TenantRow).order_by(TenantRow.created_at)))  # type: ignore[arg-type]

    def create_key(self, tenant_id: str, scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
                   label: str = "") -> str:
        scopes = _check_scopes(scopes)
        self.get(tenant_id)
        key_id = secrets.token_hex(16)
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(ApiKeyRow).values(
                id=key_id, tenant_id=tenant_id, secret_hash=_hash_secret(secret), scopes=" ".join(scopes),
                label=label, created_at=datetime.now(UTC)))
        return f"dpk_{key_id}_{secret}"

    def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id)
                                .order_by(ApiKeyRow.created_at)).all()
        return [KeyInfo(r.id, r.tenant_id, tuple(r.scopes.split()), r.label, r.created_at, r.revoked_at)
                for r in rows]

    def revoke_key(self, key_id: str, tenant_id: str | None = None) -> None:
        with self.engine.begin() as conn:
            q = update(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            if tenant_id is not None:
                q = q.where(ApiKeyRow.tenant_id == tenant_id)
            if conn.execute(q.values(revoked_at=datetime.now(UTC))).rowcount != 1:
                raise NotFound(f"no active key {key_id}")
        with self._lock:
            self._cache.pop(key_id, None)

    def authenticate(self, authorization: str | None, ip: str | None = None) -> Principal:
        """Principal for an `Authorization: Bearer <key>` header value; Unauthorized otherwise.

        With `ip` (the real client address), failures are counted per address: past
        `MAX_KEY_FAILURES_PER_ADDRESS` within the window that address gets 429 for every key, decided
        before any lookup; the decision goes to the audit trail. A key itself is never locked: its secret
        cannot be guessed, and locking it would let a stranger switch off someone else's integration."""
        if ip is not None:
            self._check_address(ip)
        try:
            return self._authenticate(authorization)
        except Unauthorized as e:
            if ip is not None:
                self._count_failure(ip, authorization, e.detail)
            raise

    def _check_address(self, ip: str) -> None:
        now = time.monotonic()
        with self._lock:
            until = self._locked.get(ip)
        if until is not None:
            if until > now:
                raise RateLimited("too many failed API key attempts from this address",
                                  retry_after=max(1, int(until - now + 0.999)))
            with self._lock:
                self._locked.pop(ip, None)

    def _count_failure(self, ip: str, authorization: str | None, why: str) -> None:
        m = KEY_RE.match((authorization or "")[7:].strip())
        subject = f"key {m.group(1)}" if m else "no or malformed key"
        decision = self.throttle.reserve([(f"apikey-address:{ip[:64]}", KEY_ADDRESS_RULE)],
                                         event=("api-key", subject, ip))
        if decision.allowed:
            self.throttle.record("api-key", subject, ip, "failed", why)
            return
        with self._lock:  # answered from memory until then: a flood costs no database work
            if len(self._locked) > MAX_CACHED_KEYS:
                self._locked.clear()
            self._locked[ip] = time.monotonic() + decision.retry_after_s
        raise RateLimited("too many failed API key attempts from this address", retry_after=decision.retry_after_s)

    def _authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        m = KEY_RE.match(authorization[7:].strip())
        if not m:
            raise Unauthorized("malformed API key")
        key_id, secret = m.groups()
        digest = _hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is None or now - hit[0] > CACHE_TTL_S:
            with self.engine.connect() as conn:
                row = conn.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).first()
            principal = None
            stored = b""
            if row is not None and row.revoked_at is None:
                principal = Principal(row.tenant_id, key_id, frozenset(row.scopes.split()))
                stored = row.secret_hash
            hit = (now, principal, stored)
            with self._lock:
                if len(self._cache) >= MAX_CACHED_KEYS:  # random unknown ids must not grow it (issue 21)
                    self._cache = {k: v for k, v in self._cache.items() if now - v[0] <= CACHE_TTL_S}
                    if len(self._cache) >= MAX_CACHED_KEYS:
                        self._cache.clear()
                self._cache[key_id] = hit
        _, principal, stored = hit
        if principal is None or not hmac.compare_digest(stored, digest):
            raise Unauthorized("unknown or revoked API key")
        return principal
