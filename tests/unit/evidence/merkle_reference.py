"""A slow, obviously correct RFC 6962 §2.1 reference: MTH, PATH and PROOF, written as the RFC states them.

Recursive over lists of leaf *data*-level hashes (the inputs are already leaf hashes, so MTH of one entry is
the entry itself). Used only to cross-check `evidence.merkle` and `evidence.tiles`; quadratic-ish and slow on
purpose: no cleverness, no shared code with the module under test.
"""

from __future__ import annotations

import hashlib


def _h(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def leaf_hash(data: bytes, name: str = "sha256") -> bytes:
    """HASH(0x00 || d)."""
    return _h(name, b"\x00" + data)


def _k(n: int) -> int:
    """The largest power of two smaller than n (requires n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes], name: str = "sha256") -> bytes:
    """MTH(D[n]) over leaf hashes: HASH() for n = 0, the leaf hash for n = 1, else split at k."""
    n = len(leaves)
    if n == 0:
        return _h(name, b"")
    if n == 1:
        return leaves[0]
    k = _k(n)
    return _h(name, b"\x01" + mth(leaves[:k], name) + mth(leaves[k:], name))


def path(m: int, leaves: list[bytes], name: str = "sha256") -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf m (RFC 6962 §2.1.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, leaves[:k], name), mth(leaves[k:], name)]
    return [*path(m - k, leaves[k:], name), mth(leaves[:k], name)]


def proof(m: int, leaves: list[bytes], name: str = "sha256") -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true): the consistency proof (RFC 6962 §2.1.2)."""
    return _subproof(m, leaves, True, name)


def _subproof(m: int, leaves: list[bytes], b: bool, name: str) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves, name)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], b, name), mth(leaves[k:], name)]
    return [*_subproof(m - k, leaves[k:], False, name), mth(leaves[:k], name)]


def node(level: int, index: int, leaves: list[bytes], name: str = "sha256") -> bytes:
    """The hash of the perfect subtree covering leaves [index * 2**level, (index + 1) * 2**level)."""
    lo = index << level
    hi = (index + 1) << level
    assert hi <= len(leaves)
    return mth(leaves[lo:hi], name)


def levels(leaves: list[bytes], name: str = "sha256") -> list[list[bytes]]:
    """Every perfect node, level by level: levels[l][i] = node(l, i), pairing neighbours bottom-up."""
    out = [list(leaves)]
    while len(out[-1]) >= 2:
        below = out[-1]
        out.append([_h(name, b"\x01" + below[2 * i] + below[2 * i + 1]) for i in range(len(below) // 2)])
    return out
