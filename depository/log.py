"""The verifiable log: sequence -> integrate -> publish (the shape of transparency-dev/tessera).

- sequence: entries get durable, contiguous indices inside the caller's transaction, under the
  sequencing lock (a row lock on PostgreSQL, SQLite's single writer). A duplicate identity returns the
  index it already has. When the caller's transaction commits, the entry is acknowledged and can never be
  lost: integration only ever reads committed entries.
- integrate: the single integrator (see integrator_lock.py) reads the next batch of sequenced entries,
  extends the tiles along the right edge only (work ~ batch + log n), signs a checkpoint, and commits
  tiles + checkpoint + new size together, compare-and-set on the old size so two integrators can never
  both commit: the log cannot fork.
- publish: the checkpoint is stored, and listeners (witnesses, TSA) are told its id.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError as DBAPIIntegrityError

from depository.db import ReadConnections, WalCheckpointer, bulk_insert, lock_for_sequencing, writer_priority
from depository.errors import BadRequest, IntegrityError, NotFound, Overloaded
from depository.integrator_lock import IntegratorLock
from depository.integrity import Halts, HighWater, IntegrationHalted, chain_link
from depository.models import CheckpointRow, LogEntry, LogSequence, LogTree, TileRow
from evidence import merkle, tilecheck, tiles
from evidence.checkpoint import Checkpoint, verify_checkpoint
from evidence.errors import EvidenceError
from evidence.note import Verifier

log = logging.getLogger(__name__)
IN_CHUNK = 900  # stay under SQLite's bound-parameter limit
TILE_CACHE = 2048  # tiles kept per process for proofs: ~32 MiB
HALT_POLL_S = 2.0  # how often a halted integrator looks whether an audit or an operator resumed it


class _LRU:
    """A small thread-safe LRU for immutable values."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._d: OrderedDict[tuple[int, int], tiles.Tile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> tiles.Tile | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple[int, int], value: tiles.Tile) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)


class CheckpointSigner(Protocol):
    """Signs a checkpoint body, returning the signed note (body, blank line, signature lines)."""

    @property
    def origin(self) -> str: ...

    def sign(self, body: str) -> str: ...


@dataclass(frozen=True)
class PublishedCheckpoint:
    id: int
    size: int
    root_hash: bytes
    note: str
    created_at: datetime

    @property
    def body(self) -> str:
        return self.note.split("\n\n", 1)[0] + "\n"

    @classmethod
    def from_row(cls, row: Any) -> PublishedCheckpoint:
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        return cls(row.id, row.size, row.root_hash, row.note, created)


class TamperFound(Exception):
    """The stored tree is not the tree the log signed (raised inside integrate, recorded as a halt)."""


_SEQUENCE_AND_SIZE = "SELECT s.next_index, t.size FROM log_sequence s, log_tree t WHERE s.id = 1 AND t.id = 1"


def _unreadable(e: DBAPIError) -> bool:
    """A stored value the driver cannot even decode (SQLite keeps any type in any column: a BLOB column
    holding TEXT that is not UTF-8). That is tampering, not an outage."""
    return "could not decode" in str(e.orig).lower()


class Log:
    """The log over one engine. `verifier` checks the log's own signature on the checkpoint it extends;
    `chain_key` links checkpoints (`integrity.chain_link`; None leaves `chain` NULL, which the audit
    reports)."""

    def __init__(self, engine: Engine, signer: CheckpointSigner, *, verifier: Verifier,
                 chain_key: bytes | None = None, high_water: HighWater | None = None,
                 hasher: merkle.Hasher = merkle.SHA256, max_pending_entries: int = 2_000_000) -> None:
        self.engine = engine
        self.signer = signer
        self.origin = signer.origin
        self.verifier = verifier
        self.chain_key = chain_key
        self.hasher = hasher
        self.max_pending_entries = max_pending_entries
        self.halts = Halts(engine)
        self.high_water = high_water or HighWater(None)
        self._listeners: list[Callable[[PublishedCheckpoint], None]] = []
        self._tiles = _LRU(TILE_CACHE)
        self._reads = ReadConnections(engine)
        self._integrated = threading.Condition()

    # ---- set-up ------------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the state rows and publish the empty checkpoint once (idempotent)."""
        with self.engine.begin() as conn:
            if conn.execute(select(LogSequence.id).where(LogSequence.id == 1)).first() is None:
                conn.execute(insert(LogSequence).values(id=1, next_index=0))
            if conn.execute(select(LogTree.id).where(LogTree.id == 1)).first() is None:
                conn.execute(insert(LogTree).values(id=1, size=0, root_hash=self.hasher.empty_root()))
        if self.latest_checkpoint_or_none() is None:
            self._publish(0, self.hasher.empty_root(), [], 0)

    def close(self) -> None:
        """Close the per-thread read connections (the engine is disposed by its owner)."""
        self._reads.close()

    def add_listener(self, fn: Callable[[PublishedCheckpoint], None]) -> None:
        self._listeners.append(fn)

    # ---- sequence ----------------------------------------------------------------------------------

    def sequence(self, conn: Connection, entries: Sequence[tuple[str, bytes]], *, fresh: bool = False
                 ) -> list[int]:
        """Assign durable indices to (identity, leaf data) pairs inside the caller's transaction.

        A duplicate identity (already sequenced, or twice in `entries`) returns the existing index.
        Raises Overloaded when integration is too far behind; the caller's transaction then rolls back
        with nothing written.

        `fresh=True` promises identities nobody has used (deposit ids just drawn from `secrets`): the
        indices are then reserved by one statement and the entries inserted without a savepoint; should
        an identity exist after all, the unique index fails the whole transaction.
        """
        if fresh:
            return self._sequence_fresh(conn, entries)
        # Driver-level SQL on this per-request path: compiling Core statements cost more than running them.
        lock_for_sequencing(conn)
        next_index, size = conn.exec_driver_sql(_SEQUENCE_AND_SIZE).one()
        if next_index - size + len(entries) > self.max_pending_entries:
            raise Overloaded(f"{next_index - size} entries await integration", retry_after=2)
        now = time.time()
        identities = [identity for identity, _ in entries]
        if len(set(identities)) == len(identities):
            # Fast path: no duplicate in the batch; a duplicate already in the log trips the unique index,
            # and only then do we pay for the lookup (inside a savepoint, so nothing is half-written).
            try:
                with conn.begin_nested():
                    bulk_insert(conn, "log_entries", ("idx", "identity", "data", "sequenced_at"),
                                [(next_index + i, identity, data, now) for i, (identity, data) in enumerate(entries)])
                out = list(range(next_index, next_index + len(entries)))
                self._advance(conn, next_index + len(entries))
                return out
            except DBAPIIntegrityError:
                pass
        existing = self._existing(conn, identities)
        out = []
        rows: list[tuple[int, str, bytes, float]] = []
        for identity, data in entries:
            idx = existing.get(identity)
            if idx is None:
                idx = next_index
                next_index += 1
                existing[identity] = idx
                rows.append((idx, identity, data, now))
            out.append(idx)
        bulk_insert(conn, "log_entries", ("idx", "identity", "data", "sequenced_at"), rows)
        if rows:
            self._advance(conn, next_index)
        return out

    def _sequence_fresh(self, conn: Connection, entries: Sequence[tuple[str, bytes]]) -> list[int]:
        # One round trip takes the lock (PostgreSQL's row lock, SQLite's write lock), reserves the indices
        # and reads the integrated size; a single deposit's transaction was mostly such round trips.
        end, size = conn.exec_driver_sql(_placeholders(conn, (
            "UPDATE log_sequence SET next_index = next_index + %s WHERE id = 1 "
            "RETURNING next_index, (SELECT size FROM log_tree WHERE id = 1)")), (len(entries),)).one()
        start = end - len(entries)
        if end - size > self.max_pending_entries:
            raise Overloaded(f"{start - size} entries await integration", retry_after=2)
        now = time.time()
        bulk_insert(conn, "log_entries", ("idx", "identity", "data", "sequenced_at"),
                    [(start + i, identity, data, now) for i, (identity, data) in enumerate(entries)])
        return list(range(start, end))

    def check_sequence(self) -> None:
        """After an insert into log_entries failed on its unique index: is the sequence counter behind the
        entries already stored (a tampered or badly restored database)? Then no deposit can be sequenced
        safely: record a halt and raise IntegrationHalted (503) instead of reporting a conflict."""
        with self.engine.connect() as conn:
            nxt, size = conn.exec_driver_sql(_SEQUENCE_AND_SIZE).one()
            top = conn.execute(select(func.max(LogEntry.idx))).scalar()
        floor = max(size, -1 if top is None else top + 1)
        if nxt < floor:
            self._halt(size, TamperFound(f"log_sequence/1/next_index: got {nxt}, want at least {floor} (the "
                                         f"entries stored and the tree integrated): new deposits would "
                                         f"reuse log indices"))

    @staticmethod
    def _advance(conn: Connection, next_index: int) -> None:
        conn.exec_driver_sql(_placeholders(conn, "UPDATE log_sequence SET next_index = %s WHERE id = 1"),
                             (next_index,))

    @staticmethod
    def _existing(conn: Connection, identities: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(identities), IN_CHUNK):
            chunk = identities[i:i + IN_CHUNK]
            for identity, idx in conn.execute(
                    select(LogEntry.identity, LogEntry.idx).where(LogEntry.identity.in_(chunk))):
                found[identity] = idx
        return found

    def add(self, identity: str, data: bytes) -> int:
        """Sequence one entry in its own transaction."""
        with self.engine.begin() as conn:
            return self.sequence(conn, [(identity, data)])[0]

    # ---- integrate ---------------------------------------------------------------------------------

    def sizes(self) -> tuple[int, int]:
        """(integrated tree size, next index to sequence)."""
        with self.engine.connect() as conn:
            size = conn.execute(select(LogTree.size).where(LogTree.id == 1)).scalar_one()
            nxt = conn.execute(select(LogSequence.next_index).where(LogSequence.id == 1)).scalar_one()
        return size, nxt

    def integrate(self, max_entries: int) -> PublishedCheckpoint | None:
        """Integrate up to `max_entries` sequenced entries and publish a checkpoint; None if nothing waits.

        Before extending, the stored state is proved to be the tree last signed: the latest checkpoint
        verifies under the log's key and is the one this process signed last (if it signed any), the tree
        row and the right-edge tiles reproduce its root (`tilecheck.verify_edge`). After extending, the
        new root is recomputed independently and proved consistent with the old one
        (`tilecheck.verify_extension`). Any failure records a halt and raises IntegrationHalted: nothing
        is signed, witnessed or timestamped until an audit passes or an operator resumes. While halted,
        this raises IntegrationHalted at once; deposits keep being sequenced and wait.

        Reads happen outside the write transaction and signing too, so sequencing is not blocked while
        the checkpoint is signed; the final write is compare-and-set on the size it started from.
        """
        halt = self.halts.current(fresh=True)
        if halt is not None:
            raise IntegrationHalted(halt.reason, extra={"halt": halt.to_json()})
        with self.engine.connect() as conn:
            target, size = conn.exec_driver_sql(_SEQUENCE_AND_SIZE).one()
            target = min(target, size + max_entries)
            if target <= size:
                return None
            try:
                tree_root = conn.execute(select(LogTree.root_hash).where(LogTree.id == 1)).scalar_one()
                latest = conn.execute(select(CheckpointRow.seq, CheckpointRow.size, CheckpointRow.root_hash,
                                             CheckpointRow.note, CheckpointRow.chain)
                                      .order_by(CheckpointRow.seq.desc()).limit(1)).first()
                data = conn.execute(select(LogEntry.idx, LogEntry.data)
                                    .where(LogEntry.idx >= size, LogEntry.idx < target)
                                    .order_by(LogEntry.idx)).all()
                edge = self._load_tiles(conn, [(c.level, c.index) for c in tiles.right_edge_tiles(size)])
            except TamperFound as e:
                self._halt(size, e)
            except DBAPIError as e:
                if not _unreadable(e):
                    raise
                self._halt(size, TamperFound(f"storage: a value the integrator reads is not of its column's "
                                             f"type ({e.orig})"))
        try:
            old_root = self._check_signed_state(size, tree_root, latest)
            leaves = _contiguous_leaves(data, size, target)
            frontier = tilecheck.verify_edge(self.hasher, size, edge.values(), old_root)
            hash_leaf = self.hasher.hash_leaf
            leaf_hashes = [hash_leaf(d) for d in leaves]
            update_ = tiles.update_tiles(self.hasher, size, edge.values(), leaf_hashes)
            merged = dict(edge)
            merged.update({(t.level, t.index): t for t in update_.tiles})
            tilecheck.verify_extension(self.hasher, size, old_root, frontier, leaf_hashes, update_.root, merged)
        except (TamperFound, EvidenceError, ValueError, KeyError, IndexError, TypeError) as e:
            self._halt(size, e)
        return self._publish(target, update_.root, update_.tiles, size, latest)

    def _halt(self, size: int, e: Exception) -> NoReturn:
        reason = e.diagnostics() if isinstance(e, EvidenceError) else str(e)
        halt = self.halts.raise_halt(size, reason)
        raise IntegrationHalted(reason, extra={"halt": halt.to_json()}) from e

    def _check_signed_state(self, size: int, tree_root: bytes, latest: Any) -> bytes:
        """The signed root of the tree the integrator is about to extend; TamperFound if storage disagrees."""
        if latest is None:
            raise TamperFound("no checkpoint is stored: the log has nothing signed to extend")
        if not isinstance(tree_root, bytes | memoryview):
            raise TamperFound(f"log_tree/1/root_hash: got {type(tree_root).__name__}, want bytes")
        if not isinstance(latest.note, str) or not isinstance(latest.root_hash, bytes | memoryview):
            raise TamperFound(f"checkpoints/seq {latest.seq}: got note {type(latest.note).__name__}, root_hash "
                              f"{type(latest.root_hash).__name__}; want str and bytes")
        try:
            verified = verify_checkpoint(latest.note, [self.verifier])
        except EvidenceError as e:
            raise TamperFound(f"checkpoints/seq {latest.seq}: the log's signature does not verify "
                              f"({e.diagnostics()})") from e
        signed = verified.checkpoint
        if signed.origin != self.origin:
            raise TamperFound(f"checkpoints/seq {latest.seq}: origin {signed.origin!r}, want {self.origin!r}")
        if (latest.size, bytes(latest.root_hash)) != (signed.size, signed.root_hash):
            raise TamperFound(f"checkpoints/seq {latest.seq}: row says size {latest.size} root "
                              f"{bytes(latest.root_hash).hex()}, its signed note says size {signed.size} "
                              f"root {signed.root_hash.hex()}")
        self._check_high_water(latest)
        if (size, bytes(tree_root)) != (signed.size, signed.root_hash):
            raise TamperFound(f"log_tree: got size {size} root {bytes(tree_root).hex()}, want the signed "
                              f"size {signed.size} root {signed.root_hash.hex()}")
        return signed.root_hash

    def _check_high_water(self, latest: Any) -> None:
        """The stored checkpoints still hold the last one this home signed (see integrity.HighWater)."""
        mark = self.high_water.read()
        if mark is None:
            return
        seq, size, digest = mark
        if seq < 0:
            raise TamperFound(f"{self.high_water.path}: unreadable high-water mark")
        if latest.seq < seq:
            raise TamperFound(f"checkpoints: the latest stored is seq {latest.seq}, but this home signed seq {seq} "
                              f"(size {size}): checkpoints were deleted or the log rolled back")
        with self.engine.connect() as conn:
            note = conn.execute(select(CheckpointRow.note).where(CheckpointRow.seq == seq)).scalar()
        if not isinstance(note, str) or hashlib.sha256(note.encode()).hexdigest() != digest:
            raise TamperFound(f"checkpoints/seq {seq}: not the checkpoint this home signed at size {size}")

    def _publish(self, size: int, root: bytes, changed: Iterable[tiles.Tile], old_size: int,
                 previous: Any = None) -> PublishedCheckpoint | None:
        body = Checkpoint(self.origin, size, root).to_text()
        note = self.signer.sign(body)
        seq = 0 if previous is None else previous.seq + 1
        prev_chain = None if previous is None or previous.chain is None else bytes(previous.chain)
        chain = chain_link(self.chain_key, prev_chain, seq, note) if self.chain_key is not None else None
        now = datetime.now(UTC)
        with writer_priority(), self.engine.begin() as conn:  # checkpoints keep pace with intake on SQLite
            if size > 0:
                # Compare-and-set first: a second integrator blocks here, then finds 0 rows and writes nothing.
                res = conn.execute(update(LogTree).where(LogTree.id == 1, LogTree.size == old_size)
                                   .values(size=size, root_hash=root))
                if res.rowcount != 1:
                    conn.rollback()
                    log.warning("integration of %d..%d lost the race; another integrator won", old_size, size)
                    return None
                self._store_tiles(conn, list(changed))
            cp_id = conn.execute(insert(CheckpointRow).values(
                seq=seq, chain=chain, size=size, root_hash=root, note=note, created_at=now,
                witnessed=False, timestamped=False).returning(CheckpointRow.id)).scalar_one()
        self.high_water.write(seq, size, note)
        published = PublishedCheckpoint(cp_id, size, root, note, now)
        with self._integrated:
            self._integrated.notify_all()
        for fn in self._listeners:
            try:
                fn(published)
            except Exception:
                log.exception("checkpoint listener failed for checkpoint %d", cp_id)
        return published

    def _load_tiles(self, conn: Connection, coords: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tiles.Tile]:
        """The stored tiles at `coords`; TamperFound if one is missing or is not a well-formed tile."""
        if not coords:
            return {}
        rows = conn.execute(select(TileRow.level, TileRow.idx, TileRow.hashes, TileRow.inner)
                            .where(tuple_(TileRow.level, TileRow.idx).in_(list(coords)))).all()
        out = {}
        for r in rows:
            if not isinstance(r.hashes, bytes | memoryview) or not isinstance(r.inner, bytes | memoryview):
                raise TamperFound(f"log_tiles/{r.level}/{r.idx}: got {type(r.hashes).__name__}/"
                                  f"{type(r.inner).__name__}, want bytes")
            try:
                out[(r.level, r.idx)] = tiles.Tile(r.level, r.idx, bytes(r.hashes), bytes(r.inner))
            except EvidenceError as e:
                raise TamperFound(f"log_tiles/{r.level}/{r.idx}: {e.diagnostics()}") from e
        missing = [c for c in coords if c not in out]
        if missing:
            raise TamperFound(f"log_tiles: right-edge tile(s) {missing} are not stored")
        return out

    def _store_tiles(self, conn: Connection, changed: list[tiles.Tile]) -> None:
        if not changed:
            return
        keys = [(t.level, t.index) for t in changed]
        present = {(r.level, r.idx) for r in conn.execute(
            select(TileRow.level, TileRow.idx).where(tuple_(TileRow.level, TileRow.idx).in_(keys)))}
        new = [{"level": t.level, "idx": t.index, "hashes": t.hashes, "inner": t.inner}
               for t in changed if (t.level, t.index) not in present]
        grown = [{"b_level": t.level, "b_idx": t.index, "hashes": t.hashes, "inner": t.inner}
                 for t in changed if (t.level, t.index) in present]
        if new:
            conn.execute(insert(TileRow), new)
        if grown:
            conn.execute(update(TileRow).where(TileRow.level == bindparam("b_level"),
                                               TileRow.idx == bindparam("b_idx"))
                         .values(hashes=bindparam("hashes"), inner=bindparam("inner")), grown)

    def wait_for_size(self, size: int, timeout_s: float) -> bool:
        """Block until the integrated tree reaches `size` (in this process or another) or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.sizes()[0] >= size:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._integrated:
                self._integrated.wait(min(remaining, 0.05))

    # ---- read --------------------------------------------------------------------------------------

    def latest_checkpoint_or_none(self) -> PublishedCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(CheckpointRow).order_by(CheckpointRow.size.desc()).limit(1)).first()
        return PublishedCheckpoint.from_row(row) if row else None

    def latest_checkpoint(self) -> PublishedCheckpoint:
        cp = self.latest_checkpoint_or_none()
        if cp is None:
            raise NotFound("the log has no checkpoint yet")
        return cp

    def checkpoint(self, checkpoint_id: int) -> PublishedCheckpoint:
        with self.engine.connect() as conn:
            row = conn.execute(select(CheckpointRow).where(CheckpointRow.id == checkpoint_id)).first()
        if row is None:
            raise NotFound(f"no checkpoint {checkpoint_id}")
        return PublishedCheckpoint.from_row(row)

    def leaf_data(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            data = conn.execute(select(LogEntry.data).where(LogEntry.idx == index)).scalar()
        if data is None:
            raise NotFound(f"no log entry {index}")
        return bytes(data)

    def _prove(self, plan: merkle.ProofPlan, size: int) -> list[bytes]:
        """Fetch only the tiles holding the plan's nodes, then rehash.

        Tiles only grow and their first W hashes never change, so a cached tile serves any tree size for
        which it is at least as wide as the tree needs (the upper levels and the right edge serve every
        proof); the rest come from one query that also reads the integrated size.
        """
        coords = tiles.tiles_for_plan(plan)
        loaded: dict[tuple[int, int], tiles.Tile] = {}
        missing = []
        for c in coords:
            hit = self._tiles.get(c)
            level, idx = c
            needed = min(tiles.TILE_WIDTH, (size >> (tiles.TILE_HEIGHT * level)) - idx * tiles.TILE_WIDTH)
            if hit is not None and hit.width >= needed:
                loaded[c] = hit
            else:
                missing.append(c)
        # The hot read path talks to the driver directly (one round trip): building and compiling Core
        # statements cost more than the indexed lookups themselves.
        where = " OR ".join(["(level = %s AND idx = %s)"] * len(missing)) or "1 = 0"
        rows = self._reads.fetchall(
            'SELECT (SELECT size FROM log_tree WHERE id = 1), level, idx, hashes, "inner" '  # noqa: S608
            f"FROM log_tiles WHERE {where} UNION ALL "
            "SELECT (SELECT size FROM log_tree WHERE id = 1), NULL, NULL, NULL, NULL",
            [v for c in missing for v in c])
        integrated = rows[-1][0]
        if size > integrated:
            raise NotFound(f"tree size {size} is beyond the integrated tree ({integrated})")
        for _, level, idx, hashes, inner in rows[:-1]:
            tile = tiles.Tile(level, idx, bytes(hashes), bytes(inner))
            loaded[(level, idx)] = tile
            self._tiles.put((level, idx), tile)
        try:
            return tiles.fetch_plan(plan, loaded, self.hasher)
        except (KeyError, IndexError) as e:
            raise IntegrityError(f"a tree node needed for this proof is not stored: {e}") from e

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Requires 0 <= index < size <= integrated size."""
        if not 0 <= index < size:
            raise BadRequest(f"index {index} is outside a tree of size {size}")
        return self._prove(merkle.plan_inclusion(index, size), size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """Requires 0 <= size1 <= size2 <= integrated size."""
        if not 0 <= size1 <= size2:
            raise BadRequest(f"cannot prove consistency from size {size1} to {size2}")
        return self._prove(merkle.plan_consistency(size1, size2), size2)

    def tile_bytes(self, level: int, index: int, width: int | None) -> bytes:
        """What `GET /tile/L/N[.p/W]` serves: W hashes (or 256 for a full tile) at tree level 8L."""
        size = self.sizes()[0]
        with self.engine.connect() as conn:
            row = conn.execute(select(TileRow.hashes).where(TileRow.level == level, TileRow.idx == index)).first()
        # Only tiles within the integrated tree are ever stored (written in the checkpoint's transaction).
        want = tiles.TILE_WIDTH if width is None else width
        if row is None or len(row[0]) < want * 32 or size == 0:
            raise NotFound(f"tile {level}/{index} width {want} is not available")
        return bytes(row[0][:want * 32])


def _contiguous_leaves(rows: Sequence[Any], start: int, end: int) -> list[bytes]:
    """The leaf data of entries [start, end) in order; TamperFound on a gap or a value that is not bytes."""
    if len(rows) != end - start:
        have = {r.idx for r in rows}
        gap = next((i for i in range(start, end) if i not in have), end)
        raise TamperFound(f"log_entries/{gap}: missing (entries {start}..{end - 1} were sequenced, "
                          f"{len(rows)} are stored)")
    out = []
    for i, r in enumerate(rows):
        if r.idx != start + i:
            raise TamperFound(f"log_entries/{start + i}: missing (found {r.idx} in its place)")
        if not isinstance(r.data, bytes | memoryview):
            raise TamperFound(f"log_entries/{r.idx}: data is {type(r.data).__name__}, want bytes")
        out.append(bytes(r.data))
    return out


def _placeholders(conn: Connection, sql: str) -> str:
    """Driver-level SQL written with `%s` placeholders, in the driver's own style (sqlite3 takes `?`)."""
    return sql if conn.dialect.paramstyle in ("format", "pyformat") else sql.replace("%s", "?")


class Integrator(threading.Thread):
    """Background integration loop: a batch closes after `max_entries` or `interval_ms`, whichever first."""

    def __init__(self, the_log: Log, lock: IntegratorLock, *, max_entries: int, interval_ms: int) -> None:
        super().__init__(name="integrator", daemon=True)
        self.log = the_log
        self.lock = lock
        self.max_entries = max_entries
        self.interval_s = interval_ms / 1000
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.checkpointer = WalCheckpointer(the_log.engine)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout)
        self.lock.release()

    def run(self) -> None:
        self.checkpointer.start()  # SQLite: commits no longer copy the WAL back into the database
        try:
            self._loop()
        finally:
            self.checkpointer.stop()

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            try:
                if not self.lock.try_acquire() or not self.lock.still_held():
                    self._stop_event.wait(1.0)
                    continue
                size, nxt = self.log.sizes()
                if nxt - size >= self.max_entries:
                    self.log.integrate(self.max_entries)
                    continue
                if nxt > size:
                    # A batch is open: give it until the interval closes it, unless it fills first.
                    self._wake.wait(self.interval_s)
                    self._wake.clear()
                    self.log.integrate(self.max_entries)
                    continue
                self._wake.wait(self.interval_s)
                self._wake.clear()
            except IntegrationHalted:
                # Logged once, loudly, when the halt was raised; look again now and then for its clearing.
                self._stop_event.wait(HALT_POLL_S)
            except Exception:
                log.exception("integration failed; retrying")
                self._stop_event.wait(1.0)


def integrator_lock_for(engine: Engine, home: Path) -> IntegratorLock:
    return IntegratorLock(engine, home / "integrator.lock")


def integrate_all(the_log: Log, max_entries: int) -> int:
    """Integrate everything sequenced so far (used by tests, the CLI and the demo).

    Raises IntegrationHalted when the stored tree fails its checks (or already had)."""
    n = 0
    while the_log.integrate(max_entries) is not None:
        n += 1
    return n

