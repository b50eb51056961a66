"""People of a tenant: accounts, argon2 passwords, sign-in with lockout, server-side sessions.

Why these choices:

* Passwords are low-entropy, so they get a deliberately slow, memory-hard hash (argon2id via argon2-cffi),
  unlike API keys, whose 256-bit secrets only need SHA-256 (see `depository.tenants`).
* Every attempt and every decision is recorded in the audit trail (`security_events`), also for e-mails
  that have no account, and an unknown e-mail still costs one argon2 verification and is throttled the
  same way: neither the answer, its timing nor the throttling reveal who has an account.
* Throttling (`depository.throttle`, counted and decided atomically before argon2 runs) is built so that
  a stranger cannot lock someone else out (issue 18):
  - a *known device* (a browser that signed in to this e-mail before, proven by an HMAC'd cookie, see
    `console/auth_views.py`) is counted only against itself: `MAX_FAILURES`, then locked for
    `LOCKOUT_WINDOW`. The right password from the owner's browser works whatever strangers do;
  - otherwise one e-mail from one client address is locked after `MAX_FAILURES`; one e-mail from all
    unknown devices together is slowed by growing delays (1, 2, 4 ... s, at most `MAX_ACCOUNT_DELAY_S`),
    never locked for longer; one client address is locked after `MAX_FAILURES_PER_IP` over all e-mails.
  The client address is the real one: behind a proxy listed in `trusted_proxies` (and only then) it comes
  from `X-Forwarded-For`. A refused attempt is not even checked, so guessing cannot continue.
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
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from depository.console.models import ConsoleSessionRow, UserRow
from depository.errors import BadRequest, Conflict, DepositoryError
from depository.throttle import Rule, Throttle

ROLES = ("admin", "legal", "viewer")
UPLOAD_ROLES = frozenset({"admin", "legal"})
MAX_FAILURES = 5
MAX_FAILURES_PER_IP = 50
LOCKOUT_WINDOW = timedelta(minutes=15)
MAX_ACCOUNT_DELAY_S = 300
# One e-mail from one address, and one known device: locked after MAX_FAILURES for LOCKOUT_WINDOW.
PAIR_RULE = Rule("account-and-address", MAX_FAILURES, LOCKOUT_WINDOW)
DEVICE_RULE = Rule("known-device", MAX_FAILURES, LOCKOUT_WINDOW)
# One e-mail from every unknown device together: slowed (growing delays), never locked for long.
ACCOUNT_RULE = Rule("account", MAX_FAILURES, LOCKOUT_WINDOW, delay=True, max_delay_s=MAX_ACCOUNT_DELAY_S)
# One client address over every e-mail: locked after MAX_FAILURES_PER_IP.
ADDRESS_RULE = Rule("address", MAX_FAILURES_PER_IP, LOCKOUT_WINDOW)
AUDIT_KIND = "console-sign-in"
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
        self.throttle = Throttle(engine)

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

    def authenticate(self, email: str, password: str, ip: str, device: str | None = None) -> User:
        """The user for these credentials; SignInFailed, or LockedOut (before checking the password).

        `ip` is the real client address (after trusted proxies); `device` the id of a known-device cookie
        that the caller has already checked belongs to this e-mail. Every decision goes to the audit trail.
        """
        # NUL cannot be stored or compared in PostgreSQL text; no e-mail address has one.
        email = normalize_email(email)[:320].replace("\x00", "\ufffd")
        ip = ip[:64]
        checks = self.sign_in_checks(email, ip, device)
        decision = self.throttle.reserve(checks, event=(AUDIT_KIND, email, ip))
        if not decision.allowed:
            wait = decision.retry_after_s
            when = (f"{-(-wait // 60)} minute{'s' if wait > 60 else ''}" if wait >= 60
                    else f"{wait} second{'s' if wait > 1 else ''}")
            raise LockedOut(f"too many failed sign-ins; try again in {when}", retry_after=wait)
        with self.engine.connect() as conn:
            row = conn.execute(select(UserRow).where(UserRow.email == email, UserRow.disabled_at.is_(None))).first()
        ok = False
        try:
            ok = _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password) and row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            self.throttle.record(AUDIT_KIND, email, ip, "failed", "known device" if device else None)
            raise SignInFailed("wrong e-mail or password")
        keys = [k for k, _ in checks]
        self.throttle.succeeded(forget=[k for k in keys if not k.startswith("signin-address:")],
                                uncount=[k for k in keys if k.startswith("signin-address:")])
        self.throttle.record(AUDIT_KIND, email, ip, "ok", "known device" if device else None)
        return User(row.id, row.tenant_id, row.email, row.role)

    @staticmethod
    def sign_in_checks(email: str, ip: str, device: str | None) -> list[tuple[str, Rule]]:
        """The counters one sign-in attempt is counted against (see the module docstring)."""
        if device:
            return [(f"signin-device:{device}", DEVICE_RULE)]
        return [(f"signin-pair:{email}|{ip}", PAIR_RULE), (f"signin-account:{email}", ACCOUNT_RULE),
                (f"signin-address:{ip}", ADDRESS_RULE)]

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
