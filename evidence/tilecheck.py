"""Checks of a tile-stored tree against what the log signed: before it signs again, and in the audit.

A log that stores its tree as tiles (`tiles.py`) extends the right-edge tiles on every integration, so a
byte altered in one of them would silently flow into every later root. These checks are the log's guard
against its own storage (the promise Trillian and Tessera keep: never sign a checkpoint inconsistent
with an earlier one):

- `verify_tile`: a tile's inner nodes are a function of its served hashes; rehash and compare.
- `verify_edge`: the right-edge tiles of a tree of `size` rehash (every served hash of every edge tile
  feeds the root, so together they commit to the whole tree) and reproduce the signed root.
- `verify_extension`: after appending a batch, the new root equals the one an independent compact range
  computes from the verified old frontier and the new leaf hashes, and a consistency proof read from the
  updated tiles leads from the signed old root to it.

Pure functions over bytes and tiles; errors say what was got and what was wanted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from evidence.errors import RootMismatch, TileMismatch
from evidence.merkle import CompactRange, Hasher, fold_right, plan_consistency, verify_consistency
from evidence.tiles import HASH_SIZE, TILE_HEIGHT, Tile, edge_frontier, fetch_plan, right_edge_tiles

__all__ = ["rehash_inner", "verify_edge", "verify_extension", "verify_tile"]


def rehash_inner(hasher: Hasher, hashes: bytes) -> bytes:
    """The inner levels (tile levels 1..7, concatenated) that a tile with these served hashes must hold."""
    children = hasher.hash_children
    row = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
    out: list[bytes] = []
    for _ in range(1, TILE_HEIGHT):
        row = [children(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        out.extend(row)
    return b"".join(out)


def verify_tile(hasher: Hasher, tile: Tile) -> None:
    """Raise TileMismatch unless the tile's inner nodes rehash from its served hashes."""
    want = rehash_inner(hasher, tile.hashes)
    if tile.inner == want:
        return
    pos = next(i for i in range(0, len(want), HASH_SIZE) if tile.inner[i : i + HASH_SIZE] != want[i : i + HASH_SIZE])
    got_hex = tile.inner[pos : pos + HASH_SIZE].hex()
    raise TileMismatch(f"tile {tile.level}/{tile.index}: inner node at byte {pos} is {got_hex}, "
                       f"want {want[pos : pos + HASH_SIZE].hex()} (rehashed from its served hashes)")


def verify_edge(hasher: Hasher, size: int, edge: Iterable[Tile], signed_root: bytes) -> list[bytes]:
    """Check the stored right edge of a tree of `size` against its signed root; return its frontier.

    Requires `edge` to be the tiles of `right_edge_tiles(size)` (any version at least that wide; ValueError
    otherwise). Raises TileMismatch if an edge tile does not rehash, RootMismatch if the edge does not
    reproduce `signed_root`.
    """
    by_level = {t.level: t for t in edge}
    cut = []
    for coord in right_edge_tiles(size):
        tile = by_level.get(coord.level)
        if tile is None or tile.index != coord.index or tile.width < coord.hash_count:
            have = None if tile is None else tile.coord
            raise ValueError(f"right-edge tiles for size {size}: got {have}, want {coord}")
        tile = tile.truncated(coord.hash_count)
        verify_tile(hasher, tile)
        cut.append(tile)
    frontier = edge_frontier(size, cut)
    got = fold_right(hasher, frontier)
    if got != signed_root:
        raise RootMismatch(f"stored right edge of the tree of size {size}", got, signed_root)
    return frontier


def verify_extension(hasher: Hasher, old_size: int, old_root: bytes, old_frontier: Sequence[bytes],
                     leaf_hashes: Sequence[bytes], new_root: bytes,
                     tiles: Mapping[tuple[int, int], Tile]) -> None:
    """Check a new root before it is signed: recomputed independently, and consistent with the old one.

    `old_frontier` is the verified compact range of the old tree (`verify_edge`), `leaf_hashes` the batch
    hashed from the entries themselves, `tiles` the updated tiles (new versions over the old edge) from which
    the consistency proof is read. Requires `tiles` to hold every tile the proof needs (KeyError otherwise).
    Raises RootMismatch or ProofError.
    """
    cr = CompactRange(hasher, old_size, old_frontier)
    cr.extend(leaf_hashes)
    independent = cr.root()
    if independent != new_root:
        raise RootMismatch(f"tree of size {cr.size} built from the tiles", new_root, independent)
    if old_size == 0 or not leaf_hashes:
        return
    proof = fetch_plan(plan_consistency(old_size, cr.size), tiles, hasher)
    verify_consistency(hasher, old_size, cr.size, proof, old_root, new_root)
