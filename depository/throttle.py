"""Failed-attempt throttling that counts and decides atomically, and the audit trail of its decisions.

An attempt first *reserves* itself against every counter that governs it, in one transaction that holds
those counters' rows locked (PostgreSQL: `SELECT ... FOR UPDATE` in key order; SQLite: the transaction
starts with its write, so it holds the database's write lock): the decision and the count cannot be
separated by a concurrent attempt. A reserved attempt counts as a failure until the caller reports a
success (`succeeded`), so N concurrent attempts against a limit of k get at most k past the check, however
slow the password check that follows (issue 21: 8 concurrent attempts once got 7 past a limit of 5).

Two kinds of rule:

* hard: after `max_failures` failures the key is refused until `window` has passed since the last
  counted failure (refused attempts do not extend it);
* delay: after `max_failures` failures each further attempt must wait `2^(n - max_failures)` seconds since
  the last failure, capped at `max_delay_s` -- it slows guessing without ever locking the key's owner
  out for long.

A counter forgets its failures once `window` has passed without a counted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from depository.models import SecurityEventRow, ThrottleRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    name: str
    max_failures: int
    window: timedelta
    delay: bool = False
    max_delay_s: int = 300

    def wait(self, failures: int, last_at: datetime, now: datetime) -> float:
        """Seconds until another attempt may be counted (0: now)."""
        if now - last_at > self.window or failures < self.max_failures:
            return 0.0
        if self.delay:
            step = min(float(self.max_delay_s), 2.0 ** (failures - self.max_failures))
            return max(0.0, step - (now - last_at).total_seconds())
        return max(0.0, (last_at + self.window - now).total_seconds())


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str = ""  # the rule that refused
    retry_after_s: int = 0


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Throttle:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _upsert_missing(self, conn: object, keys: Sequence[str], now: datetime) -> None:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(ThrottleRow).values([{"key": k, "failures": 0, "last_at": now} for k in keys])
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))  # type: ignore[attr-defined]

    def reserve(self, checks: Sequence[tuple[str, Rule]], *, now: datetime | None = None,
                event: tuple[str, str, str] | None = None) -> Decision:
        """Count one attempt against every (key, rule) if all allow it; else count nothing and say which
        rule refused. `event` = (kind, subject, ip): a refusal is written to the audit trail in the same
        transaction."""
        now = now or datetime.now(UTC)
        keys = sorted({k for k, _ in checks})
        with self.engine.begin() as conn:
            # The write comes first: on SQLite it takes the write lock now; on PostgreSQL it makes sure
            # every row exists, and FOR UPDATE then locks them (in key order: no deadlock between two).
            self._upsert_missing(conn, keys, now)
            q = select(ThrottleRow).where(ThrottleRow.key.in_(keys)).order_by(ThrottleRow.key)
            if self.engine.dialect.name == "postgresql":
                q = q.with_for_update()
            rows = {r.key: r for r in conn.execute(q)}
            worst: tuple[float, str] = (0.0, "")
            for key, rule in checks:
                r = rows[key]
                wait = rule.wait(r.failures, _utc(r.last_at), now)
                if wait > worst[0]:
                    worst = (wait, rule.name)
            if worst[0] > 0:
                decision = Decision(False, worst[1], max(1, int(worst[0] + 0.999)))
                if event is not None:
                    self._event(conn, *event, "refused", f"{decision.rule}; retry after {decision.retry_after_s} s",
                                now)
                return decision
            for key, rule in checks:
                r = rows[key]
                failures = 1 if now - _utc(r.last_at) > rule.window else r.failures + 1
                conn.execute(update(ThrottleRow).where(ThrottleRow.key == key).values(failures=failures, last_at=now))
        return Decision(True)

    def succeeded(self, forget: Sequence[str], uncount: Sequence[str] = ()) -> None:
        """The reserved attempt succeeded: `forget` counters start over (the account, the device);
        `uncount` ones only take back this attempt (an address: one good sign-in must not erase the
        failures of everyone else behind it)."""
        with self.engine.begin() as conn:
            if uncount:
                conn.execute(update(ThrottleRow).where(ThrottleRow.key.in_(list(uncount)), ThrottleRow.failures > 0)
                             .values(failures=ThrottleRow.failures - 1))
            if forget:
                conn.execute(delete(ThrottleRow).where(ThrottleRow.key.in_(list(forget))))

    def failures(self, key: str) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(select(ThrottleRow.failures).where(ThrottleRow.key == key)).scalar()
        return int(n or 0)

    # ---- audit trail -------------------------------------------------------------------------------

    @staticmethod
    def _event(conn: object, kind: str, subject: str, ip: str, decision: str, detail: str | None,
               now: datetime) -> None:
        conn.execute(insert(SecurityEventRow).values(  # type: ignore[attr-defined]
            at=now, kind=kind, subject=subject[:320], ip=ip[:64], decision=decision,
            detail=detail[:255] if detail else None))

    def record(self, kind: str, subject: str, ip: str, decision: str, detail: str | None = None) -> None:
        """Append one decision to the audit trail."""
        with self.engine.begin() as conn:
            self._event(conn, kind, subject, ip, decision, detail, datetime.now(UTC))

    def events(self, *, subject: str | None = None, ip: str | None = None, limit: int = 1000) -> list[SecurityEventRow]:
        q = select(SecurityEventRow)
        if subject is not None:
            q = q.where(SecurityEventRow.subject == subject)
        if ip is not None:
            q = q.where(SecurityEventRow.ip == ip)
        with self.engine.connect() as conn:
            return list(conn.execute(q.order_by(SecurityEventRow.id).limit(limit)))  # type: ignore[arg-type]
