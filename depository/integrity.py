"""The log's integrity state: halts of integration, and the chain that numbers checkpoints.

**Halts.** Before it signs, the integrator checks the stored tree against the last checkpoint it signed
(`evidence.tilecheck`, called from `log.Log.integrate`). When a check fails it records a halt here and
signs nothing more: no checkpoint, so nothing reaches the witnesses or the TSA. Deposits are still
sequenced durably and wait. A halt is open while `cleared_at` is NULL; it is cleared by an audit that
finds nothing (`depository audit`) or by an operator's explicit, logged command
(`depository log resume --reason ...`). Rows are never deleted, so they are the trail of both.

**Chain.** Every checkpoint row carries `seq` (0, 1, 2, ... in publication order) and
`chain = HMAC-SHA256(chain key, "depository checkpoint chain v1\\n" || previous chain || seq (8 bytes, big
endian) || SHA-256(note))`. A checkpoint deleted, reordered or renumbered breaks the chain from that row
on, and nobody without the chain key (`keys/checkpoint-chain.key`, 0600, written by `depository init`)
can mend it. The audit recomputes it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update

from depository.errors import IntegrityError
from depository.keys import write_secret
from depository.models import CheckpointRow, LogHalt

log = logging.getLogger(__name__)

CHAIN_KEY_FILE = "checkpoint-chain.key"
HIGH_WATER_FILE = "log-high-water"
CHAIN_DOMAIN = b"depository checkpoint chain v1\n"
#: How long an API process trusts its last reading of the halt state (it reads one small row).
HALT_CACHE_S = 1.0


class IntegrationHalted(IntegrityError):
    """Integration is stopped until an audit passes or an operator resumes it; deposits keep waiting."""

    status = 503
    type_slug = "integration-halted"
    title = "Integration halted: the stored log failed an integrity check"


class HighWater:
    """The last checkpoint this home signed (seq, size, SHA-256 of its note), kept outside the database.

    An intruder who can write the database but not the home could otherwise delete the newest
    checkpoints, roll the tree back and have the integrator sign a rewritten history on top of an older
    checkpoint. Before each signature the integrator requires the stored checkpoints to reach this mark,
    with this very note at its seq. A mark that lags (a crash between commit and write, another
    integrator signing later checkpoints elsewhere) only weakens the check; it never stops a sound log.
    `path=None` keeps the mark in memory (this process only).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mark: tuple[int, int, str] | None = None

    def read(self) -> tuple[int, int, str] | None:
        if self.path is None:
            return self._mark
        try:
            seq, size, digest = self.path.read_text(encoding="ascii").split()
            return int(seq), int(size), digest
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return (-1, -1, "unreadable")  # the caller reports it; never a traceback

    def write(self, seq: int, size: int, note: str) -> None:
        mark = (seq, size, hashlib.sha256(note.encode()).hexdigest())
        self._mark = mark
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(f"{mark[0]} {mark[1]} {mark[2]}\n", encoding="ascii")
            tmp.replace(self.path)


def init_chain_key(keys_dir: Path) -> bytes:
    """Create the checkpoint chain key if missing (idempotent; only `depository init` calls this)."""
    path = keys_dir / CHAIN_KEY_FILE
    if not path.exists():
        write_secret(path, secrets.token_bytes(32))
    return path.read_bytes()


def load_chain_key(keys_dir: Path) -> bytes | None:
    """The chain key, or None for a home made before it existed (the audit then says to run init)."""
    try:
        key = (keys_dir / CHAIN_KEY_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return key if len(key) == 32 else None


def chain_link(key: bytes, previous: bytes | None, seq: int, note: str) -> bytes:
    """The `chain` value of checkpoint `seq` (see the module docstring)."""
    msg = CHAIN_DOMAIN + (previous or b"") + seq.to_bytes(8, "big") + hashlib.sha256(note.encode()).digest()
    return hmac.new(key, msg, hashlib.sha256).digest()


def link_unchained(engine: Engine, key: bytes) -> int:
    """Fill `chain` for rows that lack it (checkpoints published before the chain existed), in seq order.

    Run by `depository init` only: linking vouches for the rows as they are now. Returns rows linked.
    """
    linked = 0
    with engine.begin() as conn:
        rows = conn.execute(select(CheckpointRow.id, CheckpointRow.seq, CheckpointRow.note, CheckpointRow.chain)
                            .order_by(CheckpointRow.seq)).all()
        previous: bytes | None = None
        for r in rows:
            if r.chain is None:
                link = chain_link(key, previous, r.seq, r.note)
                conn.execute(update(CheckpointRow).where(CheckpointRow.id == r.id).values(chain=link))
                linked += 1
                previous = link
            else:
                previous = bytes(r.chain)
    return linked


@dataclass(frozen=True)
class Halt:
    id: int
    raised_at: datetime
    tree_size: int
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"since": self.raised_at.isoformat(), "tree_size": self.tree_size, "reason": self.reason}


class Halts:
    """Open halts of integration, shared by every process through the database."""

    def __init__(self, engine: Engine, cache_s: float = HALT_CACHE_S) -> None:
        self.engine = engine
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, Halt | None] | None = None

    def current(self, *, fresh: bool = False) -> Halt | None:
        """The open halt, if any. Cached for `cache_s` unless `fresh` (the integrator always reads fresh)."""
        now = time.monotonic()
        with self._lock:
            if not fresh and self._cached is not None and now - self._cached[0] < self.cache_s:
                return self._cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(LogHalt).where(LogHalt.cleared_at.is_(None))
                               .order_by(LogHalt.id).limit(1)).first()
        halt = None if row is None else Halt(row.id, _utc(row.raised_at), row.tree_size, row.reason)
        with self._lock:
            self._cached = (now, halt)
        return halt

    def raise_halt(self, tree_size: int, reason: str) -> Halt:
        """Record a halt (once: an open halt is returned as it is) and say so in one clear log line."""
        existing = self.current(fresh=True)
        if existing is not None:
            return existing
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            hid = conn.execute(insert(LogHalt).values(raised_at=now, tree_size=tree_size, reason=reason[:4000])
                               .returning(LogHalt.id)).scalar_one()
        log.critical("LOG INTEGRITY CHECK FAILED at tree size %d; integration halted, nothing more is signed "
                     "until 'depository audit' passes or an operator runs 'depository log resume': %s",
                     tree_size, reason)
        self._forget()
        return Halt(hid, now, tree_size, reason)

    def clear(self, by: str, reason: str, *, raised_from_size: int = 0) -> list[Halt]:
        """Close the open halts raised at tree size >= `raised_from_size`, recording who and why."""
        now = datetime.now(UTC)
        open_ = (LogHalt.cleared_at.is_(None), LogHalt.tree_size >= raised_from_size)
        with self.engine.begin() as conn:
            rows = conn.execute(select(LogHalt).where(*open_)).all()
            if rows:
                conn.execute(update(LogHalt).where(*open_)
                             .values(cleared_at=now, cleared_by=by[:255], clear_reason=reason[:4000]))
        closed = [Halt(r.id, _utc(r.raised_at), r.tree_size, r.reason) for r in rows]
        for h in closed:
            log.warning("integration resumed by %s (halt %d at tree size %d: %s): %s",
                        by, h.id, h.tree_size, h.reason, reason)
        self._forget()
        return closed

    def _forget(self) -> None:
        with self._lock:
            self._cached = None


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def log_status(engine: Engine, halts: Halts) -> dict[str, Any]:
    """What `depository status` shows: sizes, the latest checkpoint, notarisation, halts, the last audit."""
    from sqlalchemy import func

    from depository.models import LogAudit, LogSequence, LogTree

    with engine.connect() as conn:
        size = conn.execute(select(LogTree.size).where(LogTree.id == 1)).scalar() or 0
        nxt = conn.execute(select(LogSequence.next_index).where(LogSequence.id == 1)).scalar() or 0
        latest = conn.execute(select(CheckpointRow.seq, CheckpointRow.size, CheckpointRow.created_at)
                              .order_by(CheckpointRow.seq.desc()).limit(1)).first()
        witnessed = conn.execute(select(func.max(CheckpointRow.size)).where(CheckpointRow.witnessed.is_(True))
                                 ).scalar() or 0
        stamped = conn.execute(select(func.max(CheckpointRow.size)).where(CheckpointRow.timestamped.is_(True))
                               ).scalar() or 0
        last_audit = conn.execute(select(LogAudit).order_by(LogAudit.id.desc()).limit(1)).first()
    halt = halts.current(fresh=True)
    return {
        "integration": "halted" if halt else "ok",
        "halt": halt.to_json() if halt else None,
        "tree_size": size, "pending": nxt - size,
        "latest_checkpoint": None if latest is None else {
            "seq": latest.seq, "size": latest.size, "created_at": _utc(latest.created_at).isoformat()},
        "witnessed_size": witnessed, "timestamped_size": stamped,
        "last_audit": None if last_audit is None else {
            "finished_at": _utc(last_audit.finished_at).isoformat(), "tree_size": last_audit.tree_size,
            "from_size": last_audit.from_size, "findings": last_audit.findings},
    }
