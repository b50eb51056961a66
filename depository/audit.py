"""`depository audit`: recompute the tree from the stored leaves and check everything stored against it.

Checks, in log order: entries are contiguous from 0; every leaf hash equals the hash the level-0 tile
holds; every stored tile equals the tile rebuilt from the leaves; every checkpoint's root equals the
recomputed root at its size, its body matches its row, and both log signatures (Ed25519 and SM2) verify;
the tree-state row matches. The first failure is named (index, tile or checkpoint size); a damaged
database is reported, never passed as sound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Row, select, tuple_

from depository.keys import LogKeys
from depository.models import CheckpointRow, LogEntry, LogTree, TileRow
from evidence import merkle, tiles
from evidence.checkpoint import verify_checkpoint
from evidence.errors import EvidenceError
from evidence.note import Verifier

CHUNK = 10_000
Report = Callable[[str], None]


@dataclass
class AuditReport:
    tree_size: int = 0
    entries: int = 0
    checkpoints: int = 0
    tiles_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "tree_size": self.tree_size, "entries": self.entries,
                "checkpoints": self.checkpoints, "tiles_checked": self.tiles_checked,
                "problems": self.problems}


def _entries(engine: Engine, upto: int) -> Iterator[list[tuple[int, bytes]]]:
    start = 0
    while start < upto:
        with engine.connect() as conn:
            rows = conn.execute(select(LogEntry.idx, LogEntry.data).where(
                LogEntry.idx >= start, LogEntry.idx < min(upto, start + CHUNK)).order_by(LogEntry.idx)).all()
        if not rows:
            return
        yield [(r.idx, bytes(r.data)) for r in rows]
        start = rows[-1].idx + 1


def audit(engine: Engine, keys: LogKeys, hasher: merkle.Hasher = merkle.SHA256, max_problems: int = 20
          ) -> AuditReport:
    rep = AuditReport()
    verifiers: list[Verifier] = [keys.ed25519.verifier(), keys.sm2.verifier()]

    def problem(msg: str) -> None:
        if len(rep.problems) < max_problems:
            rep.problems.append(msg)

    with engine.connect() as conn:
        state = conn.execute(select(LogTree.size, LogTree.root_hash).where(LogTree.id == 1)).first()
        cps = conn.execute(select(CheckpointRow.size, CheckpointRow.root_hash, CheckpointRow.note)
                           .order_by(CheckpointRow.size)).all()
    if state is None:
        problem("the log has no tree state: run 'depository init'")
        return rep
    rep.tree_size = size = state.size
    rep.checkpoints = len(cps)
    # Checkpoints are checked as the recomputed tree passes their size.
    pending_cps = list(cps)

    def check_checkpoints(at: int, root: bytes) -> None:
        while pending_cps and pending_cps[0].size <= at:
            cp = pending_cps.pop(0)
            if cp.size < at:
                continue  # passed inside a chunk; handled in the per-leaf loop below
            _check_checkpoint(cp, root, verifiers, problem)

    edge: dict[int, tiles.Tile] = {}
    cr = merkle.CompactRange(hasher)
    check_checkpoints(0, hasher.empty_root())
    expected = 0
    for chunk in _entries(engine, size):
        first = expected
        for idx, _ in chunk:
            if idx != expected:
                problem(f"log entry {expected} is missing (next stored entry is {idx})")
                return rep
            expected += 1
        hashes = [hasher.hash_leaf(data) for _, data in chunk]
        # Tiles first: an altered leaf is then named by its index, not by the checkpoint it breaks.
        upd = tiles.update_tiles(hasher, first, edge.values(), hashes)
        for t in upd.tiles:
            edge[t.level] = t
        edge = {t.level: t for t in _edge_after(edge, expected)}
        # A partial tile is compared only at the end of the tree: where a chunk ends inside a tile, the
        # stored tile has already grown past what the audit has rebuilt so far.
        rep.tiles_checked += _compare_tiles(
            engine, [t for t in upd.tiles if t.width == tiles.TILE_WIDTH or (expected == size and t in edge.values())],
            problem)
        if rep.problems:
            return rep
        for h in hashes:
            cr.append(h)
            if pending_cps and pending_cps[0].size == cr.size:
                check_checkpoints(cr.size, cr.root())
        rep.entries = expected
        if rep.problems:
            return rep
    if expected != size:
        problem(f"log entry {expected} is missing: the tree claims {size} leaves")
    elif cr.root() != state.root_hash:
        problem(f"tree state: stored root for size {size} differs from the recomputed root")
    for cp in pending_cps:
        problem(f"checkpoint {cp.size}: beyond the tree size {size}")
    return rep


def _edge_after(edge: dict[int, tiles.Tile], size: int) -> list[tiles.Tile]:
    want = {c.level: c for c in tiles.right_edge_tiles(size)}
    return [t for lvl, t in edge.items() if lvl in want and t.coord == want[lvl]]


def _check_checkpoint(cp: Row[Any] | Any, root: bytes, verifiers: list[Verifier], report: Report) -> None:
    size, stored_root, note = cp.size, cp.root_hash, cp.note
    try:
        verified = verify_checkpoint(note, verifiers)
    except EvidenceError as e:
        report(f"checkpoint {size}: {e.diagnostics()}")
        return
    if verified.checkpoint.size != size or verified.checkpoint.root_hash != stored_root:
        report(f"checkpoint {size}: signed body does not match its stored size/root")
    elif stored_root != root:
        report(f"checkpoint {size}: root differs from the tree recomputed from the stored leaves")
    elif not all(verified.note.verified_by(v) for v in verifiers):
        report(f"checkpoint {size}: not every log signature (Ed25519, SM2) verifies")


def _compare_tiles(engine: Engine, rebuilt: list[tiles.Tile], report: Report) -> int:
    if not rebuilt:
        return 0
    keys = [(t.level, t.index) for t in rebuilt]
    with engine.connect() as conn:
        stored = {(r.level, r.idx): r for r in conn.execute(
            select(TileRow).where(tuple_(TileRow.level, TileRow.idx).in_(keys)))}
    for t in rebuilt:
        s = stored.get((t.level, t.index))
        if s is None:
            report(f"tile {t.level}/{t.index}: missing")
            continue
        if bytes(s.hashes) != t.hashes:
            if t.level == 0:
                for pos in range(min(len(s.hashes), len(t.hashes)) // 32):
                    if s.hashes[pos * 32:(pos + 1) * 32] != t.hashes[pos * 32:(pos + 1) * 32]:
                        report(f"leaf {t.index * 256 + pos}: leaf data does not hash to the "
                               "tree's leaf hash (entry or tile altered)")
                        break
                else:
                    report(f"tile 0/{t.index}: width differs from the tree")
            else:
                report(f"tile {t.level}/{t.index}: hashes differ from the tree rebuilt from the leaves")
        elif bytes(s.inner) != t.inner:
            report(f"tile {t.level}/{t.index}: inner nodes differ from the tree rebuilt from the leaves")
    return len(rebuilt)
