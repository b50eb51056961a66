"""Read models for the console pages: search with a total (for pagination), a deposit's timeline,
matters, deposits per day, witness progress, and the public hash lookup.

Every tenant-facing query starts from `DepositRow.tenant_id == tenant_id`, as `Deposits.find` does: a
person never sees another tenant's deposit, and a foreign id answers exactly like a missing one. The
service layer's `Deposits.find` has one free-text filter and no total, which a paged, multi-field search
form needs; hence these queries, over the same table, returning the same `Deposit` objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from depository.deposits import Deposit
from depository.models import CheckpointRow, CosignatureRow, DepositRow, TimestampRow, WitnessProgress
from depository.wiring import Services

PAGE_SIZE = 25


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Search:
    """The deposit list's filters, as typed into the search form (all optional)."""

    q: str = ""          # id, hash (SHA-256 or SM3, or a prefix), file name
    kind: str = ""
    party: str = ""      # any name in the metadata (parties, issuer, licensee, author, ...)
    matter: str = ""
    since: date | None = None
    until: date | None = None  # inclusive: the whole day

    def where(self, q: Select[Any], tenant_id: str) -> Select[Any]:
        q = q.where(DepositRow.tenant_id == tenant_id)
        if self.q:
            text = self.q.strip()
            like = f"%{_escape_like(text)}%"
            q = q.where(or_(DepositRow.id == text, DepositRow.sha256.like(_escape_like(text.lower()) + "%", "\\"),
                            DepositRow.sm3.like(_escape_like(text.lower()) + "%", "\\"),
                            DepositRow.filename.ilike(like, "\\")))
        if self.kind:
            q = q.where(DepositRow.kind == self.kind)
        if self.matter:
            q = q.where(DepositRow.matter == self.matter)
        if self.party:
            # metadata_json is json.dumps output: non-ASCII names are stored \\u-escaped, so match both spellings.
            raw = self.party.strip()
            escaped = json.dumps(raw)[1:-1]
            q = q.where(or_(DepositRow.metadata_json.ilike(f"%{_escape_like(raw)}%", "\\"),
                            DepositRow.metadata_json.ilike(f"%{_escape_like(escaped)}%", "\\")))
        if self.since:
            q = q.where(DepositRow.received >= datetime(self.since.year, self.since.month, self.since.day,
                                                        tzinfo=UTC))
        if self.until:
            end = datetime(self.until.year, self.until.month, self.until.day, tzinfo=UTC) + timedelta(days=1)
            q = q.where(DepositRow.received < end)
        return q


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Page:
    deposits: list[Deposit]
    total: int
    page: int
    pages: int


def search(s: Services, tenant_id: str, f: Search, page: int = 1, per_page: int = PAGE_SIZE) -> Page:
    """One page of the tenant's deposits matching `f`, newest first, with statuses and the total."""
    with s.engine.connect() as conn:
        total = int(conn.execute(f.where(select(func.count()).select_from(DepositRow), tenant_id)).scalar_one())
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        rows = conn.execute(f.where(select(DepositRow), tenant_id).order_by(DepositRow.leaf_index.desc())
                            .limit(per_page).offset((page - 1) * per_page)).all()
    deps = [Deposit.from_row(r) for r in rows]
    with_status(s, deps)
    return Page(deps, total, page, pages)


def with_status(s: Services, deps: list[Deposit]) -> list[Deposit]:
    statuses = s.deposits_status([d.leaf_index for d in deps])
    for d in deps:
        d.status = statuses[d.leaf_index]
    return deps


# ---- the status timeline -----------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    done: bool
    when: datetime | None = None
    detail: str = ""


@dataclass
class Quorum:
    """k of n: the witnesses that must cosign (k) out of those in the policy (n)."""

    needed: int
    of: int
    names: list[str] = field(default_factory=list)


def quorum(s: Services) -> Quorum | None:
    policy = getattr(s.notary, "policy", None) if s.notary is not None else None
    if policy is None:
        return None
    names = [w.name for w in policy.witnesses]
    groups = {g.name: g for g in policy.groups}
    if policy.quorum in groups:
        g = groups[policy.quorum]
        return Quorum(g.threshold, len(g.members), names)
    if policy.quorum == "none":
        return Quorum(0, len(names), names)
    return Quorum(1, 1, names)


def timeline(s: Services, d: Deposit) -> list[Step]:
    """deposited → in a checkpoint → timestamped → witnessed k of n, each with when it happened."""
    idx = d.leaf_index
    steps = [Step("Deposited", True, d.received, f"leaf {idx} of the log")]
    with s.engine.connect() as conn:
        first = conn.execute(select(CheckpointRow).where(CheckpointRow.size > idx)
                             .order_by(CheckpointRow.size).limit(1)).first()
        steps.append(Step("In a signed checkpoint", first is not None,
                          _utc(first.created_at) if first else None,
                          f"tree size {first.size}, signed Ed25519 and SM2" if first else "waiting for the next batch"))
        stamp = conn.execute(select(TimestampRow.gen_time, TimestampRow.tsa, CheckpointRow.size)
                             .join(CheckpointRow, CheckpointRow.id == TimestampRow.checkpoint_id)
                             .where(CheckpointRow.size > idx).order_by(CheckpointRow.size).limit(1)).first()
        if s.notary is None or getattr(s.notary, "stamper", None) is None:
            steps.append(Step("Timestamped (RFC 3161)", False, None, "no timestamp authority is configured"))
        else:
            steps.append(Step("Timestamped (RFC 3161)", stamp is not None, _utc(stamp.gen_time) if stamp else None,
                              f"token over checkpoint {stamp.size}" if stamp else "waiting for the TSA"))
        q = quorum(s)
        if q is None:
            steps.append(Step("Witnessed", False, None, "no witnesses are configured"))
        else:
            witnessed = conn.execute(select(CheckpointRow).where(CheckpointRow.size > idx,
                                                                 CheckpointRow.witnessed.is_(True))
                                     .order_by(CheckpointRow.size).limit(1)).first()
            target = witnessed or conn.execute(select(CheckpointRow).where(CheckpointRow.size > idx)
                                               .order_by(CheckpointRow.size.desc()).limit(1)).first()
            cosigs = conn.execute(select(CosignatureRow.witness_name, CosignatureRow.cosigned_at)
                                  .where(CosignatureRow.checkpoint_id == target.id)).all() if target else []
            k = len({c.witness_name for c in cosigs})
            last = max((c.cosigned_at for c in cosigs), default=None)
            steps.append(Step(f"Witnessed {k} of {q.of}", witnessed is not None,
                              datetime.fromtimestamp(last, UTC) if witnessed is not None and last else None,
                              f"quorum: {q.needed} of {q.of}"
                              + (f"; cosigned by {', '.join(sorted(c.witness_name for c in cosigs))}" if cosigs
                                 else "")))
    return steps


# ---- matters and the log page ------------------------------------------------------------------------


@dataclass
class Matter:
    ref: str
    count: int
    first: datetime
    last: datetime


def matters(s: Services, tenant_id: str, limit: int = 200) -> list[Matter]:
    with s.engine.connect() as conn:
        rows = conn.execute(select(DepositRow.matter, func.count(), func.min(DepositRow.received),
                                   func.max(DepositRow.received))
                            .where(DepositRow.tenant_id == tenant_id, DepositRow.matter.is_not(None))
                            .group_by(DepositRow.matter).order_by(func.max(DepositRow.received).desc())
                            .limit(limit)).all()
    return [Matter(str(r[0]), int(r[1]), _utc(r[2]), _utc(r[3])) for r in rows]


def deposits_per_day(s: Services, tenant_id: str, days: int = 30) -> list[tuple[date, int]]:
    """The tenant's deposits per UTC day over the last `days` days, zeros included (oldest first)."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days - 1)
    day = func.date(DepositRow.received)
    with s.engine.connect() as conn:
        rows = conn.execute(select(day, func.count()).where(
            DepositRow.tenant_id == tenant_id,
            DepositRow.received >= datetime(start.year, start.month, start.day, tzinfo=UTC)).group_by(day)).all()
    counts = {(r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0]))): int(r[1]) for r in rows}
    return [(start + timedelta(days=i), counts.get(start + timedelta(days=i), 0)) for i in range(days)]


@dataclass
class WitnessState:
    name: str
    url: str
    size: int
    lag_entries: int
    last_cosigned: datetime | None
    lag_seconds: float | None
    error: str | None


def witnesses(s: Services, latest_size: int, latest_at: datetime | None) -> list[WitnessState]:
    """Each policy witness: the size it last cosigned, how far behind it is, its last cosignature time."""
    policy = getattr(s.notary, "policy", None) if s.notary is not None else None
    if policy is None:
        return []
    with s.engine.connect() as conn:
        progress = {r.witness_name: r for r in conn.execute(select(WitnessProgress)).all()}
        last = dict(conn.execute(select(CosignatureRow.witness_name, func.max(CosignatureRow.cosigned_at))
                                 .group_by(CosignatureRow.witness_name)).all())
        sizes = dict(conn.execute(select(CosignatureRow.witness_name, func.max(CheckpointRow.size))
                                  .join(CheckpointRow, CheckpointRow.id == CosignatureRow.checkpoint_id)
                                  .group_by(CosignatureRow.witness_name)).all())
    out = []
    for w in policy.witnesses:
        p = progress.get(w.name)
        size = int(sizes.get(w.name) or (p.size if p else 0))
        when = datetime.fromtimestamp(last[w.name], UTC) if last.get(w.name) else None
        # Lag in time: none while it has cosigned the latest checkpoint; else how much older its last
        # cosignature is than the latest checkpoint (None if it never cosigned).
        lag_s = None if when is None else 0.0 if size >= latest_size or latest_at is None else max(
            0.0, (latest_at - when).total_seconds())
        out.append(WitnessState(w.name, w.url or "", size, max(0, latest_size - size), when, lag_s,
                                p.last_error if p else None))
    return out


# ---- public lookup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicAnswer:
    """All the public may learn of a hash: whether it is deposited, since when, and how far it is proven."""

    deposited: bool
    since: datetime | None = None
    status: str = ""


def public_lookup(s: Services, sha256_hex: str, deposit_id: str) -> PublicAnswer:
    """Whether deposit `deposit_id` has this SHA-256, and since when (issue 21).

    Both are required: a hash alone would tell anyone who can guess a document (a standard lease with one
    name changed) that it was deposited, and when -- the oracle the leaf salt exists to prevent. The
    deposit id is what the packet (and its QR code) carries, so the lookup proves nothing its holder could
    not already show. An unknown id and a known id with another hash get the same answer, from the same
    primary-key read, and the hashes are compared in constant time."""
    import hmac

    with s.engine.connect() as conn:
        row = conn.execute(select(DepositRow.sha256, DepositRow.received, DepositRow.leaf_index)
                           .where(DepositRow.id == deposit_id)).first()
    stored = row.sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(stored.encode(), sha256_hex.encode()) or row is None:
        return PublicAnswer(False)
    status = s.deposits_status([row.leaf_index])[row.leaf_index]
    return PublicAnswer(True, _utc(row.received), status)
