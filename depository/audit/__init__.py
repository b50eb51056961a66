"""`depository audit`: every byte the log stores, checked against the leaves and the signatures.

A full audit reads the log in index order (`tree.py`: entries against their deposit rows, every tile
rebuilt and compared, full and partial, inner nodes included), then checks what was signed and notarised
(`notarised.py`: checkpoints in order and chained, both log signatures, roots, consistency between
consecutive checkpoints, every cosignature and token, the state rows). An incremental audit
(`since`) starts at a checkpoint instead: it proves that checkpoint's stored right edge reproduces its
signed root (`evidence.tilecheck.verify_edge`) and goes on from there, so a nightly audit of a large log
does only the day's work; what lies wholly before that checkpoint is left to the last full audit.

Every discrepancy is a finding (`table/key: got X, want Y`); wrong types, truncated blobs and NULLs are
findings too, never exceptions. `finish` records the run and, when nothing was found, clears an open
integration halt (the integrator then signs again).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from depository.audit.notarised import (
    AuditTrust,
    Cp,
    check_checkpoints,
    check_consistency,
    check_cosignatures,
    check_roots,
    check_state,
    check_timestamps,
    read_checkpoints,
)
from depository.audit.report import AuditReport, Finding, Progress
from depository.audit.tree import CHUNK, TreePass, TreeStart, check_tile_set, sql
from depository.integrity import Halts
from depository.models import LogAudit
from evidence import tilecheck, tiles
from evidence.errors import EvidenceError

__all__ = ["CHUNK", "AuditReport", "AuditTrust", "Finding", "audit", "finish", "last_passing_seq"]


def audit(engine: Engine, trust: AuditTrust, *, since_seq: int | None = None,
          progress: Progress | None = None) -> AuditReport:
    """Audit the log; `since_seq` makes it incremental from that checkpoint (see the module docstring)."""
    rep = AuditReport(mode="full" if not since_seq else "incremental")
    try:
        _run(engine, trust, rep, since_seq or 0, progress)
    except SQLAlchemyError as e:
        rep.add("database", f"{type(e).__name__}: {str(getattr(e, 'orig', e))[:200]}", "a readable depository schema")
    return rep


def last_passing_seq(engine: Engine) -> int | None:
    """The checkpoint seq the last audit that found nothing reached (where `--since-checkpoint last` starts)."""
    with engine.connect() as conn:
        return conn.execute(select(LogAudit.checkpoint_seq).where(LogAudit.findings == 0)
                            .order_by(LogAudit.id.desc()).limit(1)).scalar()


def finish(engine: Engine, rep: AuditReport, started_at: datetime) -> None:
    """Record the run; an audit that found nothing clears an open halt (logged, with who cleared it)."""
    with engine.begin() as conn:
        conn.execute(insert(LogAudit).values(
            started_at=started_at, finished_at=datetime.now(UTC), from_size=rep.from_size,
            tree_size=rep.tree_size, checkpoint_seq=rep.checkpoint_seq, findings=rep.finding_count))
    if rep.ok:
        # An incremental audit vouches only for what it read: it clears halts raised at or after its start.
        Halts(engine).clear("depository audit", f"{rep.mode} audit from size {rep.from_size} found nothing at "
                            f"tree size {rep.tree_size}", raised_from_size=rep.from_size)


def _run(engine: Engine, trust: AuditTrust, rep: AuditReport, from_seq: int, progress: Progress | None) -> None:
    cps, prev_chain = read_checkpoints(engine, rep, from_seq)
    if from_seq and (not cps or cps[0].seq != from_seq):
        rep.add(f"checkpoints/seq {from_seq}", "missing", "the checkpoint the incremental audit starts from")
        return
    with engine.connect() as conn:
        all_ids = {r[0] for r in conn.exec_driver_sql("SELECT id FROM checkpoints")}
        rep.open_halts = [{"since": str(r[0]), "tree_size": r[1], "reason": r[2]} for r in conn.exec_driver_sql(
            sql(conn, "SELECT raised_at, tree_size, reason FROM log_halts WHERE cleared_at IS NULL"))]
    check_checkpoints(rep, cps, trust, from_seq, prev_chain)
    rep.checkpoints = len(cps)
    latest = cps[-1] if cps else None
    if latest is None:
        rep.add("checkpoints", "none", "at least the empty checkpoint (run 'depository init')")
    rep.checkpoint_seq = latest.seq if latest else None
    state = check_state(engine, rep, latest)
    if state is None:
        return
    size, nxt = state
    rep.tree_size, rep.next_index = size, nxt
    start = _start(engine, rep, trust, cps[0]) if from_seq else TreeStart()
    if start is None:
        return
    rep.from_size = start.size
    roots = TreePass(engine, rep, trust.hasher, progress).run(start, size, nxt, [cp.size for cp in cps])
    check_roots(rep, cps, roots, start.size, size in roots)
    check_tile_set(engine, rep, size)
    check_consistency(engine, rep, cps, trust.hasher)
    check_cosignatures(engine, rep, cps, trust, all_ids)
    check_timestamps(engine, rep, cps, trust, all_ids)


def _start(engine: Engine, rep: AuditReport, trust: AuditTrust, cp: Cp) -> TreeStart | None:
    """Resume the tree at a signed checkpoint from its stored edge tiles, proved against its root."""
    if cp.body is None:
        return None  # its signature failed: reported, nothing to resume from
    coords = [(c.level, c.index) for c in tiles.right_edge_tiles(cp.size)]
    stored: dict[int, tiles.Tile] = {}
    with engine.connect() as conn:
        for level, idx in coords:
            row = conn.exec_driver_sql(sql(conn, 'SELECT RAW(hashes), RAW("inner") FROM log_tiles '
                                                 "WHERE level = ? AND idx = ?"),
                                       (level, idx)).first()
            try:
                stored[level] = tiles.Tile(level, idx, bytes(row[0]), bytes(row[1]))  # type: ignore[index]
            except (TypeError, EvidenceError):
                rep.add(f"log_tiles/{level}/{idx}", "missing or malformed",
                        f"the right-edge tile of checkpoint seq {cp.seq}")
                return None
    try:
        frontier = tilecheck.verify_edge(trust.hasher, cp.size, stored.values(), cp.root)
    except (EvidenceError, ValueError) as e:
        msg = e.diagnostics() if isinstance(e, EvidenceError) else str(e)
        rep.add(f"log_tiles (edge of seq {cp.seq})", msg, "the signed root", "run a full audit")
        return None
    cut = {c.level: stored[c.level].truncated(c.hash_count) for c in tiles.right_edge_tiles(cp.size)}
    return TreeStart(cp.size, cut, frontier)
