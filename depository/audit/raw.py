"""Reading stored values as they are, so a wrong type, a truncated blob or a NULL is a finding.

The audit reads with driver SQL (no ORM type processing): SQLite keeps whatever type was written into a
column (TEXT into a BLOB column, say), and converting it on the way out is what made the old audit crash.
Each `want_*` returns the value when it has the right shape, else records a finding and returns None.
"""

from __future__ import annotations

from datetime import UTC, datetime

from depository.audit.report import AuditReport


def want_int(rep: AuditReport, where: str, value: object, *, minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        rep.add(where, f"{type(value).__name__} {value!r}"[:80], "an integer")
        return None
    if value < minimum:
        rep.add(where, value, f">= {minimum}")
        return None
    return value


def want_bytes(rep: AuditReport, where: str, value: object, length: int | None = None) -> bytes | None:
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if not isinstance(value, bytes):
        rep.add(where, f"{type(value).__name__} {value!r}"[:80], "bytes" + (f" ({length})" if length else ""))
        return None
    if length is not None and len(value) != length:
        rep.add(where, f"{len(value)} bytes", f"{length} bytes")
        return None
    return value


def want_text(rep: AuditReport, where: str, value: object) -> str | None:
    if not isinstance(value, str):
        rep.add(where, f"{type(value).__name__} {value!r}"[:80], "text")
        return None
    return value


def want_bool(rep: AuditReport, where: str, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # SQLite keeps booleans as 0/1
        return bool(value)
    rep.add(where, f"{type(value).__name__} {value!r}"[:80], "a boolean")
    return None


def as_time(value: object) -> datetime | None:
    """A stored timestamp (a datetime from PostgreSQL, SQLAlchemy's text form on SQLite) in UTC, or None."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def want_time(rep: AuditReport, where: str, value: object) -> datetime | None:
    t = as_time(value)
    if t is None:
        rep.add(where, f"{type(value).__name__} {value!r}"[:80], "a timestamp")
    return t
