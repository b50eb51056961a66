"""Proofs and tiles served from storage: plan which nodes are needed, fetch only the tiles holding them
(a per-process cache first, then one driver round trip), rehash (transparency-dev/merkle's shape)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy import Engine, select

from depository.db import ReadConnections
from depository.errors import BadRequest, IntegrityError, NotFound
from depository.models import TileRow
from evidence import merkle, tiles

TILE_CACHE = 2048  # tiles kept per process for proofs: ~32 MiB


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


class TileReads:
    """Inclusion and consistency proofs and `GET /tile` bodies for one log. `integrated_size` reads the
    current tree size (the Log's)."""

    def __init__(self, engine: Engine, hasher: merkle.Hasher, reads: ReadConnections,
                 integrated_size: Callable[[], int]) -> None:
        self.engine = engine
        self.hasher = hasher
        self._reads = reads
        self._integrated_size = integrated_size
        self._tiles = _LRU(TILE_CACHE)

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
        size = self._integrated_size()
        with self.engine.connect() as conn:
            row = conn.execute(select(TileRow.hashes).where(TileRow.level == level, TileRow.idx == index)).first()
        # Only tiles within the integrated tree are ever stored (written in the checkpoint's transaction).
        want = tiles.TILE_WIDTH if width is None else width
        if row is None or len(row[0]) < want * 32 or size == 0:
            raise NotFound(f"tile {level}/{index} width {want} is not available")
        return bytes(row[0][:want * 32])
