"""People of a tenant: accounts, argon2 passwords, sign-in with lockout, server-side sessions.

Why these choices:

* Passwords are low-entropy, so they get a deliberately slow, memory-hard hash (argon2id via argon2-cffi),
  unlike API keys, whose 256-bit secrets only need SHA-256 (see `depository.tenants`).
* Every attempt is recorded, also for e-mails that have no account, and an unknown e-mail still costs
  one argon2 verification: the answer and its timing do not reveal who has an account.
* Lockout: `MAX_FAILURES` failures for one e-mail within `LOCKOUT_WINDOW` (since its last success) lock
  that e-mail until the window has passed; an address hammering many accounts is locked at
  `MAX_FAILURES_PER_IP`. A locked account is not even checked, so guessing cannot continue.
* Sessions are server-side rows keyed by SHA-256 of a random cookie token: signing out deletes the row,
  so a copied cookie dies with it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from depository.console.models import ConsoleSessionRow, LoginAttemptRow, UserRow
from depository.errors import BadRequest, Conflict, DepositoryError

ROLES = ("admin", "legal", "viewer")
UPLOAD_ROLES = frozenset({"admin", "legal"})
MAX_FAILURES = 5
MAX_FAILURES_PER_IP = 50
LOCKOUT_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_CHARS = 12
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # verified against for unknown e-mails (equal timing)


class SignInFailed(DepositoryError):
    """Wrong e-mail or password (deliberately not saying which)."""

    status = 401
    type_slug = "sign-in-failed"
    title = "Wrong e-mail or password"


class LockedOut(DepositoryError):
    """Too many recent failures for this e-mail or from this address."""

    status = 429
    type_slug = "locked-out"
    title = "Too many failed sign-ins"


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    email: str
    role: str

    @property
    def can_upload(self) -> bool:
        return self.role in UPLOAD_ROLES


def _utc(t: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- accounts ----------------------------------------------------------------------------------

    def create(self, tenant_id: str, email: str, password: str, role: str) -> User:
        """Create a person of `tenant_id` (which must exist); Conflict if the e-mail is taken."""
        email = normalize_email(email)
        if not EMAIL_RE.match(email):
            raise BadRequest(f"not an e-mail address: {email!r}")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD_CHARS:
            raise BadRequest(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        user = User("u_" + secrets.token_hex(12), tenant_id, email, role)
        password_hash = _hasher.hash(password)  # slow on purpose: never inside a write transaction
        from depository.models import TenantRow

        with self.engine.connect() as conn:
            if conn.execute(select(TenantRow.id).where(TenantRow.id == tenant_id)).first() is None:
                raise BadRequest(f"no tenant {tenant_id}")
        # A write transaction that starts with its write (SQLite: no read-then-upgrade lock failure);
        # the unique e-mail constraint decides races.
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(UserRow).values(id=user.id, tenant_id=tenant_id, email=email, role=role,
                                                    password_hash=password_hash, created_at=datetime.now(UTC)))
        except IntegrityError as e:
            raise Conflict(f"a user with e-mail {email} already exists") from e
        return user

    # ---- sign-in -----------------------------------------------------------------------------------

    def locked_until(self, email: str, ip: str, now: datetime | None = None) -> datetime | None:
        """When the lockout of this e-mail (or address) ends, or None if sign-in may be tried now."""
        now = now or datetime.now(UTC)
        since = now - LOCKOUT_WINDOW
        email = normalize_email(email)
        with self.engine.connect() as conn:
            last_ok = conn.execute(select(func.max(LoginAttemptRow.at)).where(
                LoginAttemptRow.email == email, LoginAttemptRow.ok.is_(True))).scalar()
            start = max(since, _utc(last_ok)) if last_ok is not None else since
            fails = [_utc(t) for t in conn.execute(
                select(LoginAttemptRow.at).where(LoginAttemptRow.email == email, LoginAttemptRow.ok.is_(False),
                                                 LoginAttemptRow.at > start)
                .order_by(LoginAttemptRow.at.desc()).limit(MAX_FAILURES)).scalars()]
            ip_fails = [_utc(t) for t in conn.execute(
                select(LoginAttemptRow.at).where(LoginAttemptRow.ip == ip, LoginAttemptRow.ok.is_(False),
                                                 LoginAttemptRow.at > since)
                .order_by(LoginAttemptRow.at.desc()).limit(MAX_FAILURES_PER_IP)).scalars()]
        ends = []
        if len(fails) >= MAX_FAILURES:
            ends.append(fails[-1] + LOCKOUT_WINDOW)  # the oldest of the last MAX_FAILURES ages out
        if len(ip_fails) >= MAX_FAILURES_PER_IP:
            ends.append(ip_fails[-1] + LOCKOUT_WINDOW)
        return max(ends) if ends else None

    def authenticate(self, email: str, password: str, ip: str) -> User:
        """The user for these credentials; SignInFailed, or LockedOut (before checking the password)."""
        email = normalize_email(email)[:320]
        ip = ip[:64]
        until = self.locked_until(email, ip)
        if until is not None:
            minutes = max(1, int((until - datetime.now(UTC)).total_seconds() // 60) + 1)
            raise LockedOut(f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}")
        with self.engine.connect() as conn:
            row = conn.execute(select(UserRow).where(UserRow.email == email, UserRow.disabled_at.is_(None))).first()
        ok = False
        try:
            ok = _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password) and row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        with self.engine.begin() as conn:
            conn.execute(insert(LoginAttemptRow).values(email=email, ip=ip, at=datetime.now(UTC), ok=ok))
        if not ok or row is None:
            raise SignInFailed("wrong e-mail or password")
        return User(row.id, row.tenant_id, row.email, row.role)

    # ---- sessions ----------------------------------------------------------------------------------

    def start_session(self, user: User) -> str:
        """A new session for `user`; returns the cookie token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now))
            conn.execute(insert(ConsoleSessionRow).values(token_hash=token_hash(token), user_id=user.id,
                                                          created_at=now, expires_at=now + SESSION_LIFETIME))
        return token

    def session_user(self, token: str) -> User | None:
        """The signed-in user of a cookie token, or None (unknown, expired, or the user was disabled)."""
        if not token or len(token) > 128:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(UserRow.id, UserRow.tenant_id, UserRow.email, UserRow.role, ConsoleSessionRow.expires_at)
                .join(ConsoleSessionRow, ConsoleSessionRow.user_id == UserRow.id)
                .where(ConsoleSessionRow.token_hash == token_hash(token), UserRow.disabled_at.is_(None))).first()
        if row is None or _utc(row.expires_at) <= datetime.now(UTC):
            return None
        return User(row.id, row.tenant_id, row.email, row.role)

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.token_hash == token_hash(token)))
