"""Merkle/tile throughput, pure CPU (no database): run `.venv/bin/python bench/bench_merkle.py`.

Measures what the integrator and the proof endpoint will pay:
  1. CompactRange.extend over 10**6 leaves in batches of 1,000 (root per batch);
  2. update_tiles over 10**6 leaves in batches of 1,000 (tiles + root per batch), into an in-memory dict;
  3. inclusion and consistency proofs at 10**6 leaves from that dict: plan + tile lookups + rehash.
Also reports the raw hash_children cost and stored bytes per leaf. Takes well under 2 minutes.
"""

from __future__ import annotations

import random
import statistics
import time

from evidence.merkle import (
    SHA256,
    SM3,
    CompactRange,
    Hasher,
    plan_consistency,
    plan_inclusion,
    verify_inclusion,
)
from evidence.tiles import Tile, fetch_plan, right_edge_tiles, update_tiles

LEAVES = 1_000_000
BATCH = 1_000
PROOFS = 20_000


def bench_hash(hasher: Hasher) -> float:
    """Microseconds per hash_children call."""
    a, b = hasher.hash_leaf(b"a"), hasher.hash_leaf(b"b")
    children = hasher.hash_children
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        children(a, b)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    rng = random.Random(1)
    leaves = [SHA256.hash_leaf(rng.randbytes(16)) for _ in range(LEAVES)]
    print(f"hash_children: sha256 {bench_hash(SHA256):.2f} us, sm3 {bench_hash(SM3):.2f} us")

    cr = CompactRange(SHA256)
    t0 = time.perf_counter()
    for i in range(0, LEAVES, BATCH):
        cr.extend(leaves[i : i + BATCH])
        cr.root()
    dt = time.perf_counter() - t0
    print(f"CompactRange: {LEAVES:,} leaves in batches of {BATCH:,}: {dt:.2f} s, {LEAVES / dt:,.0f} leaves/s")

    store: dict[tuple[int, int], Tile] = {}
    size = 0
    per_batch = []
    t0 = time.perf_counter()
    for i in range(0, LEAVES, BATCH):
        tb = time.perf_counter()
        edge = [store[(c.level, c.index)] for c in right_edge_tiles(size)]
        update = update_tiles(SHA256, size, edge, leaves[i : i + BATCH])
        for t in update.tiles:
            store[(t.level, t.index)] = t
        size = update.size
        per_batch.append(time.perf_counter() - tb)
    dt = time.perf_counter() - t0
    assert update.root == cr.root(), "tile root and compact-range root disagree"
    stored = sum(len(t.hashes) + len(t.inner) for t in store.values())
    print(
        f"update_tiles: {LEAVES:,} leaves in batches of {BATCH:,}: {dt:.2f} s, {LEAVES / dt:,.0f} leaves/s; "
        f"per batch median {statistics.median(per_batch) * 1e3:.2f} ms, max {max(per_batch) * 1e3:.2f} ms; "
        f"{len(store):,} tiles, {stored / LEAVES:.1f} bytes/leaf"
    )

    root = update.root
    indices = [rng.randrange(LEAVES) for _ in range(PROOFS)]
    t0 = time.perf_counter()
    proofs = [fetch_plan(plan_inclusion(i, LEAVES), store) for i in indices]
    dt = time.perf_counter() - t0
    each = dt / PROOFS * 1e6
    print(f"inclusion proof at {LEAVES:,} leaves (plan + tile lookups + rehash): {each:.1f} us each")
    for i, p in list(zip(indices, proofs, strict=True))[:200]:
        verify_inclusion(SHA256, i, LEAVES, leaves[i], p, root)
    t0 = time.perf_counter()
    for i, p in zip(indices, proofs, strict=True):
        verify_inclusion(SHA256, i, LEAVES, leaves[i], p, root)
    dt = time.perf_counter() - t0
    print(f"verify_inclusion at {LEAVES:,} leaves: {dt / PROOFS * 1e6:.1f} us each")

    sizes = [rng.randrange(1, LEAVES) for _ in range(PROOFS)]
    t0 = time.perf_counter()
    for s in sizes:
        fetch_plan(plan_consistency(s, LEAVES), store)
    dt = time.perf_counter() - t0
    each = dt / PROOFS * 1e6
    print(f"consistency proof to {LEAVES:,} leaves (plan + lookups + rehash): {each:.1f} us each")


if __name__ == "__main__":
    main()
