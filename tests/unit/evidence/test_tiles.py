"""evidence.tiles: the C2SP tlog-tiles path codec, and a tree built through update_tiles vs the reference."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.errors import FormatError
from evidence.merkle import SHA256, SM3, Hasher, NodeID, plan_inclusion, verify_consistency, verify_inclusion
from evidence.tiles import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    TILE_WIDTH,
    Tile,
    TileCoord,
    edge_root,
    fetch_plan,
    format_tile_path,
    node_location,
    parse_tile_path,
    prove_consistency,
    prove_inclusion,
    right_edge_tiles,
    root_from_tiles,
    tile_root,
    tiles_for_plan,
    tiles_for_size,
    update_tiles,
)

try:  # the folder has no __init__.py today; stay importable if one is added
    from . import merkle_reference as ref
except ImportError:
    import merkle_reference as ref

Store = dict[tuple[int, int], Tile]

# --- path codec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, None, "tile/0/000"),
        (0, 1234067, 8, "tile/0/x001/x234/067.p/8"),
        (0, 1234067, None, "tile/0/x001/x234/067"),
        (1, 999, 255, "tile/1/999.p/255"),
        (2, 1000, 1, "tile/2/x001/000.p/1"),
        (63, 0, None, "tile/63/000"),
        (0, 2**56 - 1, None, "tile/0/x072/x057/x594/x037/x927/935"),
    ],
)
def test_tile_path_known_forms(level: int, index: int, width: int | None, path: str) -> None:
    assert format_tile_path(level, index, width) == path
    assert parse_tile_path(path) == TileCoord(level, index, width)
    assert TileCoord(level, index, width).path == path


@given(level=st.integers(0, 7), data=st.data(), width=st.none() | st.integers(1, 255))
def test_tile_path_round_trip(level: int, data: st.DataObject, width: int | None) -> None:
    index = data.draw(st.integers(0, (MAX_TREE_SIZE >> (8 * (level + 1))) - 1))
    path = format_tile_path(level, index, width)
    assert parse_tile_path(path) == TileCoord(level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tile/0/",
        "tiles/0/000",
        "/tile/0/000",
        "tile/0/000/",
        "tile/entries/000",
        "tile/entries/x001/234.p/5",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/+1/000",
        "tile/a/000",
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x000",
        "tile/0/x123",
        "tile/0/1234",
        "tile/0/001/234",
        "tile/0/x001/x234",
        "tile/0/X001/234",
        "tile/0/x000/234",
        "tile/0/x001/-23",
        "tile/0/x001/ 23",
        "tile/0/x001/２34",
        "tile/0/x1/234",
        "tile/0/xx01/234",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/1000",
        "tile/0/000.p/01",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/8/9",
        "tile/0/000.q/8",
        "tile/0/000p/8",
        "tile/0/000.p/+8",
        "tile/0/000/.p/8",
        "tile/0/x001/x002/x003/x004/x005/x006/007",
        "tile/0/x072/x057/x594/x037/x927/936",
        "tile/7/001",
        "tile/8/001",
        "tile/1/x001/000/002",
        "tile/0/x001//234",
    ],
)
def test_malformed_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(FormatError):
        parse_tile_path(path)


def test_format_tile_path_preconditions() -> None:
    for level, index, width in [(-1, 0, None), (64, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 256)]:
        with pytest.raises(ValueError):
            format_tile_path(level, index, width)


# --- which tiles a tree has -----------------------------------------------------------------------------


def test_tiles_for_size_matches_spec_examples() -> None:
    coords = tiles_for_size(70_000)
    assert sum(1 for c in coords if c.level == 0 and c.width is None) == 273
    assert [c for c in coords if c.width is not None] == [
        TileCoord(0, 273, 112),
        TileCoord(1, 1, 17),
        TileCoord(2, 0, 1),
    ]
    assert [c for c in coords if c.level == 1] == [TileCoord(1, 0), TileCoord(1, 1, 17)]
    assert right_edge_tiles(70_000) == [TileCoord(0, 273, 112), TileCoord(1, 1, 17), TileCoord(2, 0, 1)]
    assert tiles_for_size(256) == [TileCoord(0, 0), TileCoord(1, 0, 1)]
    assert right_edge_tiles(256) == [TileCoord(1, 0, 1)]
    assert tiles_for_size(0) == [] and right_edge_tiles(0) == []
    assert right_edge_tiles(65536) == [TileCoord(2, 0, 1)]


def test_node_location() -> None:
    assert node_location(NodeID(0, 0)) == (0, 0, 0, 0)
    assert node_location(NodeID(0, 300)) == (0, 1, 0, 44)
    assert node_location(NodeID(3, 33)) == (0, 1, 3, 1)
    assert node_location(NodeID(8, 5)) == (1, 0, 0, 5)
    assert node_location(NodeID(15, 3)) == (1, 1, 7, 1)
    assert node_location(NodeID(16, 0)) == (2, 0, 0, 0)


def test_tile_shape_is_checked() -> None:
    h = b"\x11" * HASH_SIZE
    with pytest.raises(FormatError):
        Tile(0, 0, b"", b"")
    with pytest.raises(FormatError):
        Tile(0, 0, h[:-1], b"")
    with pytest.raises(FormatError):
        Tile(0, 0, h * 257, b"")
    with pytest.raises(FormatError, match="want 32"):
        Tile(0, 0, h * 2, b"")
    t = Tile(0, 0, h * 3, h)
    assert t.coord == TileCoord(0, 0, 3) and t.node(1, 0) == h
    with pytest.raises(IndexError):
        t.node(1, 1)
    with pytest.raises(IndexError):
        t.node(8, 0)


# --- a tree built through update_tiles ------------------------------------------------------------------


def _build(hasher: Hasher, leaves: list[bytes], batches: list[int]) -> tuple[Store, list[bytes]]:
    """Integrate `leaves` in batches the way storage would; check the append-only rules on the way."""
    store: Store = {}
    roots = [hasher.empty_root()]
    size = 0
    for k in batches:
        edge = [store[(c.level, c.index)] for c in right_edge_tiles(size)]
        for c, t in zip(right_edge_tiles(size), edge, strict=True):
            assert t.coord == c
        update = update_tiles(hasher, size, edge, leaves[size : size + k])
        seen = set()
        for t in update.tiles:
            key = (t.level, t.index)
            assert key not in seen, "each tile at most once per batch"
            seen.add(key)
            old = store.get(key)
            if old is not None:
                assert old.width < TILE_WIDTH, "a full tile is never rewritten"
                assert t.width > old.width and t.hashes.startswith(old.hashes), "tiles only grow"
            store[key] = t
        size = update.size
        roots.append(update.root)
        assert update.root == edge_root(
            hasher, size, [store[(c.level, c.index)] for c in right_edge_tiles(size)]
        )
    return store, roots


def _check_tree(hasher: Hasher, leaves: list[bytes], store: Store, rng: random.Random) -> None:
    n = len(leaves)
    want_root = ref.mth(leaves, hasher.name)
    levels = ref.levels(leaves, hasher.name)
    # Exactly the tiles of tiles_for_size, each at its final width.
    assert sorted((t.coord for t in store.values()), key=lambda c: (c.level, c.index)) == sorted(
        tiles_for_size(n), key=lambda c: (c.level, c.index)
    )
    # Every perfect node is stored where node_location says, with the reference value.
    for level, row in enumerate(levels):
        for i, h in enumerate(row):
            tl, ti, r, pos = node_location(NodeID(level, i))
            assert store[(tl, ti)].node(r, pos) == h
    # Each full tile's root is what the tile level above serves for it.
    for t in store.values():
        if t.width == TILE_WIDTH:
            parent = store[(t.level + 1, t.index // TILE_WIDTH)]
            assert parent.node(0, t.index % TILE_WIDTH) == tile_root(hasher, t.hashes)
    # A client rebuilds the root from served tile bytes alone.
    served = {t.coord: t.hashes for t in store.values()}
    fetched: list[TileCoord] = []

    def fetch(c: TileCoord) -> bytes:
        fetched.append(c)
        return served[c]

    assert root_from_tiles(n, fetch, hasher) == want_root
    assert fetched == right_edge_tiles(n)
    # Proofs read from tiles equal the reference; storage fetches few tiles.
    for index in [0, n - 1, *rng.sample(range(n), min(n, 6))]:
        proof = prove_inclusion(index, n, store, hasher)
        assert proof == ref.path(index, leaves, hasher.name)
        assert len(tiles_for_plan(plan_inclusion(index, n))) <= 2 * len(right_edge_tiles(n)) + 2
    for index in rng.sample(range(n), min(n, 100)):
        verify_inclusion(hasher, index, n, leaves[index], prove_inclusion(index, n, store, hasher), want_root)
    for size1 in [1, n, *rng.sample(range(1, n + 1), min(n, 4))]:
        proof = prove_consistency(size1, n, store, hasher)
        assert proof == ref.proof(size1, leaves, hasher.name)
        verify_consistency(hasher, size1, n, proof, ref.mth(leaves[:size1], hasher.name), want_root)
    # Storage stays well under 100 bytes a leaf.
    stored = sum(len(t.hashes) + len(t.inner) for t in store.values())
    assert stored <= 100 * n + 64 * 32 * 8


def _batches(rng: random.Random, n: int) -> list[int]:
    out = []
    left = n
    while left:
        k = min(left, rng.choice([1, 2, 3, 7, 255, 256, 257, 1000, 4096, rng.randint(1, 20_000)]))
        out.append(k)
        left -= k
    return out


@settings(deadline=None, max_examples=4)
@given(n=st.integers(1, 70_000), seed=st.integers(0, 2**32))
def test_tree_from_random_batches_matches_reference(n: int, seed: int) -> None:
    rng = random.Random(seed)
    leaves = [SHA256.hash_leaf(rng.randbytes(8)) for _ in range(n)]
    store, roots = _build(SHA256, leaves, _batches(rng, n))
    assert roots[-1] == ref.mth(leaves)
    _check_tree(SHA256, leaves, store, rng)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70_000])
def test_tree_at_tile_boundaries(n: int) -> None:
    rng = random.Random(n)
    leaves = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(n)]
    store, roots = _build(SHA256, leaves, _batches(rng, n))
    assert roots[-1] == ref.mth(leaves)
    _check_tree(SHA256, leaves, store, rng)


def test_every_intermediate_root_is_right() -> None:
    leaves = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(700)]
    batches = [1] * 300 + [2] * 100 + [50] * 4 + [0, 100]
    _, roots = _build(SHA256, leaves, batches)
    sizes = [0]
    for k in batches:
        sizes.append(sizes[-1] + k)
    for size, got in zip(sizes, roots, strict=True):
        assert got == ref.mth(leaves[:size])


def test_sm3_tiles() -> None:
    rng = random.Random(3)
    leaves = [SM3.hash_leaf(rng.randbytes(8)) for _ in range(3000)]
    store, roots = _build(SM3, leaves, _batches(rng, 3000))
    assert roots[-1] == ref.mth(leaves, "sm3") != ref.mth(leaves, "sha256")
    _check_tree(SM3, leaves, store, rng)


def test_update_tiles_preconditions() -> None:
    leaves = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(300)]
    store, _ = _build(SHA256, leaves, [300])
    edge = [store[(c.level, c.index)] for c in right_edge_tiles(300)]
    with pytest.raises(ValueError, match="right-edge tiles for size 301"):
        update_tiles(SHA256, 301, edge, leaves[:1])
    with pytest.raises(ValueError, match="right-edge tiles for size 300"):
        update_tiles(SHA256, 300, edge[:1], leaves[:1])
    with pytest.raises(ValueError, match="got extra tiles"):
        update_tiles(SHA256, 256, edge, leaves[:1])
    with pytest.raises(ValueError, match="cannot be cut to width 45"):
        edge[0].truncated(45)
    with pytest.raises(ValueError, match="leaf hash of 3 bytes"):
        update_tiles(SHA256, 300, edge, [b"abc"])
    with pytest.raises(ValueError, match="tiles hold 32-byte hashes"):
        update_tiles(Hasher("sha512"), 0, [], [])
    empty = update_tiles(SHA256, 300, edge, [])
    assert empty.tiles == [] and empty.root == ref.mth(leaves) and empty.size == 300


def test_root_from_tiles_rejects_wrong_lengths() -> None:
    with pytest.raises(FormatError, match="got 31 bytes, want 32"):
        root_from_tiles(1, lambda c: b"\x00" * 31)
    assert root_from_tiles(0, lambda c: b"") == SHA256.empty_root()


def test_fetch_plan_needs_a_wide_enough_tile() -> None:
    leaves = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(10)]
    store, _ = _build(SHA256, leaves, [10])
    with pytest.raises(IndexError):
        fetch_plan(plan_inclusion(0, 12), store)


def test_retry_with_tiles_grown_past_size() -> None:
    """Storage upserted a batch's tiles but not the new size: integrating again gives the same tiles."""
    leaves = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(70_000)]
    store, _ = _build(SHA256, leaves, [600])
    before = dict(store)
    first = update_tiles(
        SHA256, 600, [before[(c.level, c.index)] for c in right_edge_tiles(600)], leaves[600:]
    )
    for t in first.tiles:
        store[(t.level, t.index)] = t
    # The crash: the size stayed 600, the latest tiles are loaded.
    again = update_tiles(
        SHA256, 600, [store[(c.level, c.index)] for c in right_edge_tiles(600)], leaves[600:]
    )
    assert again.tiles == first.tiles and again.root == first.root == ref.mth(leaves)
    for c in right_edge_tiles(600):
        grown = store[(c.level, c.index)]
        assert grown.truncated(c.hash_count) == before[(c.level, c.index)]
    assert edge_root(SHA256, 600, [store[(c.level, c.index)] for c in right_edge_tiles(600)]) == ref.mth(
        leaves[:600]
    )
