"""C2SP tlog-tiles v0.1.0 tile math, and how our log stores a tree as tiles.

Public face (c2sp.org/tlog-tiles): tile (L, N) at height 8 is the run of 256 Merkle tree hashes at tree level
8L with indices N*256 .. N*256+255, served at `tile/<L>/<N>[.p/<W>]`; the right-edge tile at each level is
partial (width W = floor(size / 256**L) mod 256). Entry bundles (`tile/entries/...`) are not served here:
leaf data belongs to its depositor.

Storage (our choice): a stored `Tile` keeps the served hashes *and* the complete inner nodes of the tile
(tree levels 8L+1 .. 8L+7), about 64 bytes per leaf in all. With them every proof node is one lookup, and
a proof at 10**7 leaves needs only the few hashes of one ephemeral right-edge node: rehashing up to 255
hashes per tile level (~1.1 us each) would blow the 0.5 ms budget.

Integration (`update_tiles`) appends a batch to the right-edge tiles: the caller loads
`right_edge_tiles(size)`, passes them with the batch, and upserts the returned tiles. Work is the batch plus
O(log n); a tile is written again only while partial, and its `hashes` only ever grow by appending.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from evidence.errors import FormatError
from evidence.merkle import (
    SHA256,
    CompactRange,
    Hasher,
    NodeID,
    ProofPlan,
    fold_right,
    plan_consistency,
    plan_inclusion,
)

TILE_HEIGHT = 8
"""Levels of the tree per tile (tlog-tiles: tiles are 256 hashes wide)."""
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
"""Bytes per hash in a tile (SHA-256; our SM3 trees use the same size)."""
MAX_TILE_LEVEL = 63
"""tlog-tiles: `<L>` is between 0 and 63."""
MAX_TREE_SIZE = 1 << 64
"""Tree sizes are uint64 (tlog-checkpoint); a tile starting at or past 2**64 can never exist."""
_INNER_COUNTS = {w: tuple(w >> r for r in range(1, TILE_HEIGHT)) for w in range(1, TILE_WIDTH + 1)}


@dataclass(frozen=True, slots=True)
class TileCoord:
    """A tile's address: `width` is None for a full tile, else 1..255 (a partial tile, `.p/<W>`)."""

    level: int
    index: int
    width: int | None = None

    @property
    def hash_count(self) -> int:
        """Number of hashes the tile serves."""
        return TILE_WIDTH if self.width is None else self.width

    @property
    def path(self) -> str:
        """The tile's tlog-tiles path, e.g. `tile/0/x001/x234/067.p/8`."""
        return format_tile_path(self.level, self.index, self.width)


_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_ELEMENT = re.compile(r"[0-9]{3}")


def format_tile_path(level: int, index: int, width: int | None = None) -> str:
    """The tlog-tiles path of tile (level, index), `.p/<width>` added for a partial tile.

    Requires 0 <= level <= 63, 0 <= index, and width None (full) or 1..255; raises ValueError otherwise.
    The index is written as zero-padded 3-digit elements, all but the last prefixed with `x`
    (1234067 -> `x001/x234/067`).
    """
    if not 0 <= level <= MAX_TILE_LEVEL or index < 0:
        raise ValueError(f"tile level {level}, index {index}: want 0 <= level <= 63, index >= 0")
    if width is not None and not 1 <= width < TILE_WIDTH:
        raise ValueError(f"tile width {width}: want 1..255 for a partial tile, None for a full one")
    elements = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        elements.append(f"x{index % 1000:03d}")
        index //= 1000
    path = f"tile/{level}/{'/'.join(reversed(elements))}"
    return path if width is None else f"{path}.p/{width}"


def parse_tile_path(path: str) -> TileCoord:
    """Parse `tile/<L>/<N>[.p/<W>]` strictly (one spelling per tile); raises FormatError otherwise.

    Rejected: anything but the `tile/` prefix; `entries` bundles (not served); L outside 0..63 or with
    leading zeros; index elements that are not exactly 3 digits, a missing `x` on a non-final element or an
    `x` on the final one, a leading `x000` element; a width of 0, 256 or more or with leading zeros; a tile
    whose start index is at or past 2**64.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise FormatError(f"tile path {path[:80]!r}: want tile/<L>/<N>[.p/<W>]")
    if parts[1] == "entries":
        raise FormatError(f"tile path {path[:80]!r}: entry bundles are not served")
    if not _LEVEL.fullmatch(parts[1]) or int(parts[1]) > MAX_TILE_LEVEL:
        raise FormatError(f"tile path {path[:80]!r}: level must be 0..63 without leading zeros")
    level = int(parts[1])
    rest = parts[2:]
    width: int | None = None
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not _WIDTH.fullmatch(w) or int(w) >= TILE_WIDTH:
            raise FormatError(f"tile path {path[:80]!r}: partial width must be 1..255 without leading zeros")
        width = int(w)
        rest = [*rest[:-2], rest[-2][:-2]]
    if len(rest) > 7:  # 2**64 has 20 digits
        raise FormatError(f"tile path {path[:80]!r}: index has too many elements")
    index = 0
    for i, element in enumerate(rest):
        last = i == len(rest) - 1
        digits = element if last else element[1:]
        if (not last and not element.startswith("x")) or not _ELEMENT.fullmatch(digits):
            raise FormatError(
                f"tile path {path[:80]!r}: index elements must be 3 digits, all but the last prefixed x"
            )
        index = index * 1000 + int(digits)
    if len(rest) > 1 and rest[0] == "x000":
        raise FormatError(f"tile path {path[:80]!r}: index has a leading zero element")
    if index << (TILE_HEIGHT * (level + 1)) >= MAX_TREE_SIZE:
        raise FormatError(f"tile path {path[:80]!r}: tile starts past the largest tree size 2**64")
    return TileCoord(level, index, width)


def _inner_size(width: int) -> int:
    return sum(_INNER_COUNTS[width])


@dataclass(frozen=True, slots=True)
class Tile:
    """A stored tile: the served `hashes` (width * 32 bytes) and the tile's complete inner nodes.

    `inner` concatenates tile levels 1..7 in order; tile level r holds floor(width / 2**r) nodes, the
    complete nodes at tree level 8*level + r under this tile. Raises FormatError if the byte lengths do not
    fit that shape (corrupt storage).
    """

    level: int
    index: int
    hashes: bytes
    inner: bytes

    def __post_init__(self) -> None:
        width, extra = divmod(len(self.hashes), HASH_SIZE)
        if extra or not 1 <= width <= TILE_WIDTH:
            raise FormatError(f"tile {self.level}/{self.index}: got {len(self.hashes)} bytes of hashes")
        if len(self.inner) != _inner_size(width) * HASH_SIZE:
            want = _inner_size(width) * HASH_SIZE
            raise FormatError(
                f"tile {self.level}/{self.index}: got {len(self.inner)} inner bytes, want {want}"
            )

    @property
    def width(self) -> int:
        """Number of served hashes (256 for a full tile)."""
        return len(self.hashes) // HASH_SIZE

    @property
    def coord(self) -> TileCoord:
        """The tile's address (width None when full)."""
        w = self.width
        return TileCoord(self.level, self.index, None if w == TILE_WIDTH else w)

    def truncated(self, width: int) -> Tile:
        """This tile as it was when it held `width` hashes (tiles only grow, so a prefix is exact).

        Lets storage hand over the latest stored version of a tile, even one that grew past the tree size
        being extended (say, tiles upserted before a crash, the new size not). Requires
        1 <= width <= self.width (ValueError otherwise).
        """
        w = self.width
        if not 1 <= width <= w:
            raise ValueError(f"tile {self.level}/{self.index} of width {w} cannot be cut to width {width}")
        if width == w:
            return self
        parts = []
        off = 0
        for have, keep in zip(_INNER_COUNTS[w], _INNER_COUNTS[width], strict=True):
            parts.append(self.inner[off * HASH_SIZE : (off + keep) * HASH_SIZE])
            off += have
        return Tile(self.level, self.index, self.hashes[: width * HASH_SIZE], b"".join(parts))

    def node(self, level_within_tile: int, pos: int) -> bytes:
        """The hash at tile level `level_within_tile` (0..7), position `pos` from the tile's left edge.

        Requires 0 <= pos < width >> level_within_tile (the node is complete in this tile); IndexError
        otherwise, which for storage means it served a tile older than the tree size asked about.
        """
        w = len(self.hashes) // HASH_SIZE
        if not 0 <= level_within_tile < TILE_HEIGHT or not 0 <= pos < w >> level_within_tile:
            raise IndexError(
                f"tile {self.level}/{self.index} (width {w}) has no node {level_within_tile}/{pos}"
            )
        if level_within_tile == 0:
            off = pos * HASH_SIZE
            return self.hashes[off : off + HASH_SIZE]
        off = (sum(_INNER_COUNTS[w][: level_within_tile - 1]) + pos) * HASH_SIZE
        return self.inner[off : off + HASH_SIZE]


def node_location(node: NodeID) -> tuple[int, int, int, int]:
    """Where a perfect tree node is stored: (tile_level, tile_index, level_within_tile, pos).

    A node at tree level 8L + r (r < 8) lives in tile level L, inner level r; the tile is the one whose tile
    leaves it covers. Nodes at r = 0 are what the tile serves.
    """
    tile_level, r = divmod(node.level, TILE_HEIGHT)
    shift = TILE_HEIGHT - r
    tile_index = node.index >> shift
    return tile_level, tile_index, r, node.index - (tile_index << shift)


def tiles_for_plan(plan: ProofPlan) -> list[tuple[int, int]]:
    """The distinct (tile_level, tile_index) a plan's nodes live in, so storage can fetch them at once."""
    seen: dict[tuple[int, int], None] = {}
    for n in plan.nodes:
        tl, ti, _, _ = node_location(n)
        seen[(tl, ti)] = None
    return list(seen)


def fetch_plan(
    plan: ProofPlan, tiles: Mapping[tuple[int, int], Tile], hasher: Hasher = SHA256
) -> list[bytes]:
    """Read a plan's nodes out of stored tiles and rehash them into the proof.

    Requires `tiles` to hold every tile of `tiles_for_plan(plan)`, each at least as wide as the tree the plan
    is for (tiles only grow, so the latest stored version is fine); KeyError/IndexError otherwise.
    """
    hashes = []
    for n in plan.nodes:
        tl, ti, r, pos = node_location(n)
        hashes.append(tiles[(tl, ti)].node(r, pos))
    return plan.rehash(hashes, hasher)


def right_edge_tiles(size: int) -> list[TileCoord]:
    """The partial tiles of a tree of `size` leaves, lowest level first (the tiles `update_tiles` needs).

    Level L has one when floor(size / 256**L) mod 256 > 0. Requires 0 <= size.
    """
    out: list[TileCoord] = []
    level = 0
    count = size
    while count:
        w = count & (TILE_WIDTH - 1)
        count >>= TILE_HEIGHT
        if w:
            out.append(TileCoord(level, count, w))
        level += 1
    return out


def tiles_for_size(size: int) -> list[TileCoord]:
    """Every tile a tree of `size` leaves serves: at each level its full tiles, then its partial tile."""
    out: list[TileCoord] = []
    level = 0
    count = size
    while count:
        full, w = divmod(count, TILE_WIDTH)
        out.extend(TileCoord(level, i) for i in range(full))
        if w:
            out.append(TileCoord(level, full, w))
        count = full
        level += 1
    return out


def _frontier(hasher: Hasher, tile_level_hashes: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The compact range of a tree from its partial tiles' served hashes, given lowest level first."""
    out: list[bytes] = []
    for hashes in reversed(tile_level_hashes):
        cr = CompactRange(hasher)
        cr.extend(hashes)
        out.extend(cr.hashes)
    return out


def root_from_tiles(size: int, fetch: Callable[[TileCoord], bytes], hasher: Hasher = SHA256) -> bytes:
    """Rebuild the root of a tree of `size` leaves from served tile bytes alone (what a client can do).

    Fetches only `right_edge_tiles(size)`: their hashes commit to every full tile below them. Raises
    FormatError if a fetched tile is not width * 32 bytes.
    """
    per_level = []
    for coord in right_edge_tiles(size):
        data = fetch(coord)
        want = coord.hash_count * HASH_SIZE
        if len(data) != want:
            raise FormatError(f"{coord.path}: got {len(data)} bytes, want {want}")
        per_level.append([data[i : i + HASH_SIZE] for i in range(0, want, HASH_SIZE)])
    return fold_right(hasher, _frontier(hasher, per_level))


def tile_root(hasher: Hasher, data: bytes) -> bytes:
    """MTH of a tile's served hashes: for a full tile, the hash the level above serves for it."""
    cr = CompactRange(hasher)
    cr.extend(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))
    return cr.root()


def edge_root(hasher: Hasher, size: int, edge: Iterable[Tile]) -> bytes:
    """The root of a tree of `size` from its stored right-edge tiles, in O(log n) hashes.

    Requires `edge` to hold the tiles of `right_edge_tiles(size)`, at least that wide, and no others
    (ValueError otherwise); the frontier nodes are read from the tiles' inner levels, not rehashed.
    """
    return fold_right(hasher, edge_frontier(size, edge))


def edge_frontier(size: int, edge: Iterable[Tile]) -> list[bytes]:
    """The compact range of a tree of `size` (its perfect subtrees, largest first) read from its edge tiles.

    Same requirements as `edge_root`; `merkle.CompactRange(hasher, size, edge_frontier(size, edge))` resumes
    the tree without the tiles.
    """
    by_level = _check_edge(size, edge)
    frontier: list[bytes] = []
    for coord in reversed(right_edge_tiles(size)):
        tile = by_level[coord.level]
        w = tile.width
        for r in range(TILE_HEIGHT - 1, -1, -1):
            if w >> r & 1:
                frontier.append(tile.node(r, (w >> r) - 1))
    return frontier


def _check_edge(size: int, edge: Iterable[Tile]) -> dict[int, Tile]:
    """Index `edge` by level, cut back to the widths of `size`; ValueError if it is not that tree's edge."""
    by_level = {t.level: t for t in edge}
    want = right_edge_tiles(size)
    out: dict[int, Tile] = {}
    for coord in want:
        tile = by_level.pop(coord.level, None)
        if tile is None or tile.index != coord.index or tile.width < coord.hash_count:
            got = None if tile is None else tile.coord
            raise ValueError(f"right-edge tiles for size {size}: got {got}, want {coord}")
        out[coord.level] = tile.truncated(coord.hash_count)
    if by_level:
        extra = sorted(t.coord.path for t in by_level.values())
        raise ValueError(f"right-edge tiles for size {size}: got extra tiles {extra}, want {want}")
    return out


@dataclass(frozen=True, slots=True)
class TileUpdate:
    """What integrating a batch produced: the tiles to upsert, the new size and its root."""

    tiles: list[Tile]
    size: int
    root: bytes


class _Builder:
    """One tile being filled: its served hashes and inner levels as lists of 32-byte hashes."""

    __slots__ = ("index", "levels")

    def __init__(self, index: int, tile: Tile | None) -> None:
        self.index = index
        self.levels: list[list[bytes]] = [[] for _ in range(TILE_HEIGHT)]
        if tile is not None:
            w = tile.width
            h = tile.hashes
            self.levels[0] = [h[i : i + HASH_SIZE] for i in range(0, len(h), HASH_SIZE)]
            inner = tile.inner
            off = 0
            for r, count in enumerate(_INNER_COUNTS[w], start=1):
                end = off + count * HASH_SIZE
                self.levels[r] = [inner[i : i + HASH_SIZE] for i in range(off, end, HASH_SIZE)]
                off = end

    def tile(self, level: int) -> Tile:
        return Tile(
            level, self.index, b"".join(self.levels[0]), b"".join(b"".join(x) for x in self.levels[1:])
        )


def update_tiles(hasher: Hasher, size: int, edge: Iterable[Tile], leaf_hashes: Sequence[bytes]) -> TileUpdate:
    """Append `leaf_hashes` to a tree of `size` leaves stored as tiles.

    Requires `edge` to hold, for each tile of `right_edge_tiles(size)`, that tile as stored — any version at
    least that wide, cut back with `Tile.truncated` — and nothing else (ValueError otherwise), and leaf
    hashes of 32 bytes. Returns every tile that is new or grew, and the new root. A tile that becomes full is
    returned once, full, and never again; the one exception is storage retrying after a crash with tiles
    grown past `size`, where the same bytes are recomputed (provided the leaves at indices >= size are the
    ones it integrated before, which durable sequencing guarantees). Costs about one hash per leaf plus
    O(log n).
    """
    if hasher.size != HASH_SIZE:
        raise ValueError(f"tiles hold {HASH_SIZE}-byte hashes, hasher {hasher.name} makes {hasher.size}")
    by_level = _check_edge(size, edge)
    for h in leaf_hashes:
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash of {len(h)} bytes, want {HASH_SIZE}")
    children = hasher.hash_children
    written: list[Tile] = []
    final: dict[int, Tile] = dict(by_level)
    incoming: Sequence[bytes] = leaf_hashes
    level = 0
    while incoming:
        count = size >> (TILE_HEIGHT * level)
        tile_index, w = divmod(count, TILE_WIDTH)
        b = _Builder(tile_index, by_level.get(level) if w else None)
        levels = b.levels
        row = levels[0]
        completed: list[bytes] = []
        for h in incoming:
            p = len(row)
            row.append(h)
            r = 0
            while p & 1 and r < TILE_HEIGHT - 1:
                below = levels[r]
                h = children(below[-2], h)
                r += 1
                levels[r].append(h)
                p >>= 1
            if p & 1:  # the tile is full: its root is a tile leaf one tile level up
                written.append(b.tile(level))
                completed.append(children(levels[TILE_HEIGHT - 1][0], h))
                b = _Builder(b.index + 1, None)
                levels = b.levels
                row = levels[0]
        final.pop(level, None)
        if row:
            t = b.tile(level)
            written.append(t)
            final[level] = t
        incoming = completed
        level += 1
    new_size = size + len(leaf_hashes)
    return TileUpdate(written, new_size, edge_root(hasher, new_size, final.values()))


def prove_inclusion(
    index: int, size: int, tiles: Mapping[tuple[int, int], Tile], hasher: Hasher = SHA256
) -> list[bytes]:
    """Inclusion proof of leaf `index` in the tree of `size` from stored tiles (see `fetch_plan`).

    Requires 0 <= index < size (ValueError otherwise).
    """
    return fetch_plan(plan_inclusion(index, size), tiles, hasher)


def prove_consistency(
    size1: int, size2: int, tiles: Mapping[tuple[int, int], Tile], hasher: Hasher = SHA256
) -> list[bytes]:
    """Consistency proof from size1 to size2 from stored tiles. Requires 0 <= size1 <= size2."""
    return fetch_plan(plan_consistency(size1, size2), tiles, hasher)
