"""RFC 6962 / RFC 9162 Merkle tree math: hashing, proof planning, verification, compact ranges.

Pure functions over bytes and ints with an injected `Hasher`; no I/O. A proof is built in three steps, so
storage reads only what it needs: *plan* (`plan_inclusion`, `plan_consistency` list the ids of the perfect
subtrees to fetch), *fetch* (storage maps each `NodeID` to a stored hash, see `evidence.tiles`), *rehash*
(`ProofPlan.rehash` folds the fetched right-edge nodes into the one ephemeral node a proof carries there).

Verification takes primitives (index, size, leaf hash, proof, root) and raises `ProofError` whose message
says what was got and what was wanted. The accept/reject behaviour follows the transparency-dev/merkle test
vectors: a consistency proof from size 0 is rejected unless the caller asks for the witness-protocol rule
(`allow_empty_old=True`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from evidence.errors import ProofError

LEAF_PREFIX = b"\x00"
"""Domain separation for leaf hashes: MTH({d}) = HASH(0x00 || d) (RFC 6962 §2.1, RFC 9162 §2.1.1)."""

NODE_PREFIX = b"\x01"
"""Domain separation for interior nodes: HASH(0x01 || left || right) (RFC 6962 §2.1, RFC 9162 §2.1.1)."""


class Hasher:
    """An RFC 6962 tree hasher over one hash algorithm ("sha256" or "sm3", both OpenSSL via hashlib).

    The hasher is a value passed to every function (never a global), so the same math serves a SHA-256 log
    and an SM3 cross-check tree. `hash_children` is the hot path of tree building (about one call per leaf),
    so it is a closure bound at construction time rather than a method that looks the algorithm up per call.

    Attributes:
        name: the algorithm name as hashlib knows it.
        size: digest size in bytes (32 for both supported algorithms).
        hash_leaf: `HASH(0x00 || data)`, the leaf hash of `data`.
        hash_children: `HASH(0x01 || left || right)`, the parent of two nodes.
    """

    __slots__ = ("_empty", "hash_children", "hash_leaf", "name", "size")

    name: str
    size: int
    hash_leaf: Callable[[bytes], bytes]
    hash_children: Callable[[bytes, bytes], bytes]

    def __init__(self, name: str) -> None:
        """Bind the algorithm `name`; raises ValueError if OpenSSL does not provide it."""
        template = hashlib.new(name)
        self.name = name
        self.size = template.digest_size
        self._empty = template.digest()
        node = NODE_PREFIX
        leaf = LEAF_PREFIX
        if name == "sha256":
            sha256 = hashlib.sha256

            def hash_children(left: bytes, right: bytes) -> bytes:
                return sha256(node + left + right).digest()

            def hash_leaf(data: bytes) -> bytes:
                return sha256(leaf + data).digest()

        else:
            # hashlib.new() looks the name up on every call (about 3x slower for SM3); copying a fresh
            # template object skips that lookup.
            copy = template.copy

            def hash_children(left: bytes, right: bytes) -> bytes:
                h = copy()
                h.update(node + left + right)
                return h.digest()

            def hash_leaf(data: bytes) -> bytes:
                h = copy()
                h.update(leaf + data)
                return h.digest()

        self.hash_children = hash_children
        self.hash_leaf = hash_leaf

    def empty_root(self) -> bytes:
        """MTH({}) = HASH("") — the root of the empty tree (RFC 6962 §2.1)."""
        return self._empty

    def __repr__(self) -> str:
        return f"Hasher({self.name!r})"


SHA256 = Hasher("sha256")
"""The log's hasher (RFC 6962, C2SP tlog-tiles); the default everywhere."""

SM3 = Hasher("sm3")
"""GB/T 32905 SM3 in the same RFC 6962 tree shape, for national-standard cross-checks."""


@dataclass(frozen=True, slots=True)
class NodeID:
    """The perfect subtree at height `level` covering leaves [index * 2**level, (index + 1) * 2**level).

    Level 0 nodes are leaf hashes. Only nodes whose whole range lies inside a tree exist in it; the partial
    right-edge subtrees of RFC 6962 are ephemeral and never have an id.
    """

    level: int
    index: int

    @property
    def begin(self) -> int:
        """First leaf index covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf index covered."""
        return (self.index + 1) << self.level


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which nodes to fetch for a proof, and how to turn the fetched hashes into the proof.

    `nodes[begin:end]` (when it holds two or more ids) are the perfect subtrees that together form one
    ephemeral right-edge node; `rehash` folds them right-to-left into that node. Every other fetched hash is
    a proof element as is, in order.
    """

    nodes: tuple[NodeID, ...]
    begin: int = 0
    end: int = 0

    @property
    def proof_len(self) -> int:
        """Number of hashes in the finished proof."""
        span = self.end - self.begin
        return len(self.nodes) - span + 1 if span > 1 else len(self.nodes)

    def rehash(self, hashes: Sequence[bytes], hasher: Hasher = SHA256) -> list[bytes]:
        """Turn the hashes of `nodes` (same order) into the proof.

        Requires len(hashes) == len(nodes); raises ValueError otherwise (a storage bug, not a bad proof).
        """
        if len(hashes) != len(self.nodes):
            raise ValueError(f"rehash: got {len(hashes)} hashes, want {len(self.nodes)}")
        begin, end = self.begin, self.end
        if end - begin <= 1:
            return list(hashes)
        h = hashes[end - 1]
        children = hasher.hash_children
        for i in range(end - 2, begin - 1, -1):
            h = children(hashes[i], h)
        return [*hashes[:begin], h, *hashes[end:]]


def _path(index: int, level: int, size: int) -> ProofPlan:
    """Plan the path from NodeID(level, index) to the root of a tree of `size` leaves.

    Requires the node to exist in the tree: (index + 1) << level <= size.
    Below the level where the node's path and the last leaf's path meet, every sibling is perfect except
    possibly the one at the meeting level, which covers the ragged right edge and is split into its perfect
    parts; above it, only left siblings exist and they are perfect.
    """
    last = (size - 1) >> level
    meet = (index ^ last).bit_length() + level  # lowest level where both paths share a node
    nodes: list[NodeID] = [NodeID(lvl, (index >> (lvl - level)) ^ 1) for lvl in range(level, meet - 1)]
    begin = end = 0
    if meet > level:
        lvl = meet - 1
        sibling = (index >> (lvl - level)) ^ 1
        start = sibling << lvl
        if start + (1 << lvl) <= size:
            nodes.append(NodeID(lvl, sibling))
        else:
            begin = len(nodes)
            remaining = size - start
            for bit in range(lvl - 1, -1, -1):
                if remaining >> bit & 1:
                    nodes.append(NodeID(bit, start >> bit))
                    start += 1 << bit
            end = len(nodes)
    for lvl in range(meet, last.bit_length() + level):
        node = index >> (lvl - level)
        if node & 1:
            nodes.append(NodeID(lvl, node ^ 1))
    return ProofPlan(tuple(nodes), begin, end)


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """Plan the RFC 9162 §2.1.3 inclusion proof of leaf `index` in the tree of `size` leaves.

    Requires 0 <= index < size; raises ValueError otherwise.
    """
    if not 0 <= index < size:
        raise ValueError(f"plan_inclusion: requires 0 <= index < size, got index {index}, size {size}")
    return _path(index, 0, size)


def plan_consistency(size1: int, size2: int) -> ProofPlan:
    """Plan the RFC 9162 §2.1.4 consistency proof from the tree of `size1` leaves to that of `size2`.

    Requires 0 <= size1 <= size2; raises ValueError otherwise. Equal sizes and size1 = 0 need no proof, so
    their plan is empty. Otherwise the proof is the path of the old tree's smallest (rightmost) perfect
    subtree in the new tree, preceded by that subtree's own hash unless it is the whole old tree.
    """
    if not 0 <= size1 <= size2:
        raise ValueError(f"plan_consistency: requires 0 <= size1 <= size2, got {size1}, {size2}")
    if size1 == 0 or size1 == size2:
        return ProofPlan(())
    level = (size1 & -size1).bit_length() - 1
    index = (size1 >> level) - 1
    path = _path(index, level, size2)
    if index == 0:
        return path
    shift = 1 if path.end > path.begin else 0
    return ProofPlan((NodeID(level, index), *path.nodes), path.begin + shift, path.end + shift)


def inclusion_proof_len(index: int, size: int) -> int:
    """Length of the inclusion proof of `index` in a tree of `size` leaves. Requires 0 <= index < size."""
    meet = (index ^ (size - 1)).bit_length()
    return meet + (index >> meet).bit_count()


def _check_hash(hasher: Hasher, value: bytes, what: str) -> None:
    if len(value) != hasher.size:
        raise ProofError(f"{what}: got {len(value)} bytes, want {hasher.size}")


def _check_proof(hasher: Hasher, proof: Sequence[bytes], want: int, what: str) -> None:
    if len(proof) != want:
        raise ProofError(f"{what}: got {len(proof)} proof hashes, want {want}")
    for i, p in enumerate(proof):
        _check_hash(hasher, p, f"{what}: proof hash {i}")


def root_from_inclusion(
    hasher: Hasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` leads to from `leaf_hash` at `index` in a tree of `size` leaves.

    Requires 0 <= index < size, a leaf hash and proof hashes of `hasher.size` bytes and exactly as many proof
    hashes as the tree shape needs; raises ProofError otherwise. Uses the RFC 9162 §2.1.3.2 algorithm.
    """
    if not 0 <= index < size:
        raise ProofError(f"inclusion proof: index {index} is not in a tree of size {size}")
    _check_hash(hasher, leaf_hash, "inclusion proof: leaf hash")
    _check_proof(hasher, proof, inclusion_proof_len(index, size), "inclusion proof")
    children = hasher.hash_children
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if fn & 1 or fn == sn:
            r = children(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = children(r, p)
        fn >>= 1
        sn >>= 1
    if sn:  # unreachable after the length check; kept as the RFC's own final test
        raise ProofError(f"inclusion proof: got {len(proof)} hashes, too few for tree size {size}")
    return r


def verify_inclusion(
    hasher: Hasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`.

    Requires 0 <= index < size. Returns nothing; raises ProofError ("got <root>, want <root>") on failure.
    """
    got = root_from_inclusion(hasher, index, size, leaf_hash, proof)
    if got != root:
        raise ProofError(f"inclusion proof: got root {got.hex()}, want {root.hex()}")


def verify_subtree_inclusion(
    hasher: Hasher, index: int, start: int, end: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the subtree [start, end) whose hash is `root`.

    A subtree (draft-ietf-plants-merkle-tree-certs, tlog subtrees) is valid when 0 <= start < end and start
    is a multiple of the smallest power of two >= end - start; its hash is the MTH of leaves [start, end),
    so the proof is an ordinary inclusion proof of index - start in a tree of end - start leaves.
    Raises ProofError for an invalid subtree, an index outside it, or a proof that does not verify.
    """
    if not 0 <= start < end or start % (1 << (end - start - 1).bit_length()):
        raise ProofError(f"subtree inclusion proof: [{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ProofError(f"subtree inclusion proof: index {index} is not in subtree [{start}, {end})")
    verify_inclusion(hasher, index - start, end - start, leaf_hash, proof, root)


def verify_consistency(
    hasher: Hasher,
    size1: int,
    size2: int,
    proof: Sequence[bytes],
    root1: bytes,
    root2: bytes,
    *,
    allow_empty_old: bool = False,
) -> None:
    """Check that the tree of `size1` leaves with `root1` is a prefix of the tree of `size2` with `root2`.

    Requires 0 <= size1 <= size2 (else ProofError). Equal sizes need an empty proof and equal roots. By
    default size1 = 0 is rejected (nothing is proved; transparency-dev/merkle does the same). A C2SP
    tlog-witness seeing a log for the first time passes allow_empty_old=True: then size1 = 0 is accepted
    with an empty proof if root1 is `hasher.empty_root()` (and, if size2 = 0 too, root2 equals root1).
    Otherwise uses the RFC 9162 §2.1.4.2 algorithm; raises ProofError ("got X, want Y") on failure.
    """
    if size1 < 0 or size2 < size1:
        raise ProofError(f"consistency proof: requires 0 <= size1 <= size2, got {size1}, {size2}")
    if size1 == 0:
        if not allow_empty_old:
            raise ProofError("consistency proof: old size 0 proves nothing; want size1 > 0")
        if proof:
            raise ProofError(f"consistency proof from size 0: got {len(proof)} proof hashes, want 0")
        empty = hasher.empty_root()
        if root1 != empty:
            raise ProofError(f"consistency proof from size 0: got old root {root1.hex()}, want {empty.hex()}")
        if size2 == 0 and root2 != root1:
            raise ProofError(f"consistency proof: got new root {root2.hex()}, want {root1.hex()}")
        return
    if size1 == size2:
        if proof:
            raise ProofError(f"consistency proof between equal sizes: got {len(proof)} hashes, want 0")
        if root1 != root2:
            raise ProofError(f"consistency proof: same size, got new root {root2.hex()}, want {root1.hex()}")
        return
    _check_proof(hasher, proof, plan_consistency(size1, size2).proof_len, "consistency proof")
    children = hasher.hash_children
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if not sn:  # unreachable after the length check; kept as the RFC's own test
            raise ProofError(f"consistency proof: too many hashes for sizes {size1}, {size2}")
        if fn & 1 or fn == sn:
            fr = children(c, fr)
            sr = children(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = children(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != root1:
        raise ProofError(f"consistency proof: got old root {fr.hex()}, want {root1.hex()}")
    if sr != root2:
        raise ProofError(f"consistency proof: got new root {sr.hex()}, want {root2.hex()}")


def fold_right(hasher: Hasher, hashes: Sequence[bytes]) -> bytes:
    """Hash perfect subtrees of strictly decreasing size, left to right, into the MTH of their union.

    This is how RFC 6962 shapes a ragged right edge: MTH = H(P1, H(P2, ... H(Pk-1, Pk))).
    Returns `hasher.empty_root()` for no hashes.
    """
    if not hashes:
        return hasher.empty_root()
    children = hasher.hash_children
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = children(hashes[i], h)
    return h


def root(hasher: Hasher, leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over already-hashed leaves (RFC 6962 §2.1), in O(n) hashes and O(log n) memory."""
    cr = CompactRange(hasher)
    cr.extend(leaf_hashes)
    return cr.root()


class CompactRange:
    """The right frontier of a tree: the perfect subtrees covering leaves [0, size), largest first.

    There is one subtree per set bit of `size`, so appending costs one leaf plus one hash per trailing one
    bit (amortised one hash) and the root costs popcount(size) - 1 hashes. The integrator keeps this to get
    a new root in time proportional to the batch plus log n.
    """

    __slots__ = ("_children", "_hashes", "_size", "hasher")

    def __init__(self, hasher: Hasher = SHA256, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Resume from a stored frontier. Requires len(hashes) == popcount(size) (else ValueError)."""
        if size < 0 or len(hashes) != size.bit_count():
            want = size.bit_count()
            raise ValueError(f"compact range of size {size}: got {len(hashes)} hashes, want {want}")
        self.hasher = hasher
        self._children = hasher.hash_children
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The frontier, largest subtree first (a copy)."""
        return list(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash at index `size`."""
        hashes = self._hashes
        children = self._children
        s = self._size
        h = leaf_hash
        while s & 1:
            h = children(hashes.pop(), h)
            s >>= 1
        hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes in order (same result as repeated `append`)."""
        hashes = self._hashes
        children = self._children
        pop, push = hashes.pop, hashes.append
        size = self._size
        for leaf_hash in leaf_hashes:
            h = leaf_hash
            s = size
            while s & 1:
                h = children(pop(), h)
                s >>= 1
            push(h)
            size += 1
        self._size = size

    def root(self) -> bytes:
        """MTH of leaves [0, size)."""
        return fold_right(self.hasher, self._hashes)
