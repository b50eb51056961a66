"""evidence.merkle against the transparency-dev/merkle vectors and the RFC 6962 reference in this folder."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.errors import EvidenceError, ProofError
from evidence.merkle import (
    LEAF_PREFIX,
    NODE_PREFIX,
    SHA256,
    SM3,
    CompactRange,
    Hasher,
    NodeID,
    ProofPlan,
    inclusion_proof_len,
    plan_consistency,
    plan_inclusion,
    root,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
    verify_subtree_inclusion,
)

try:  # the folder has no __init__.py today; stay importable if one is added
    from . import merkle_reference as ref
except ImportError:
    import merkle_reference as ref


def _shared_testdata() -> Path:
    here = Path(__file__).resolve().parents[3].parent / "shared" / "testdata"
    if here.is_dir():
        return here
    env = os.environ.get("DEPOSITORY_SHARED_DIR")
    if env and (Path(env) / "testdata").is_dir():
        return Path(env) / "testdata"
    raise RuntimeError(f"no shared test data at {here}; set DEPOSITORY_SHARED_DIR to the shared folder")


VECTORS = _shared_testdata() / "rfc6962-vectors"


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no vectors under {VECTORS / kind}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b(p) for p in value or []]


def _leaves(n: int, salt: bytes = b"", hasher: Hasher = SHA256) -> list[bytes]:
    return [hasher.hash_leaf(salt + i.to_bytes(4, "big")) for i in range(n)]


def _node_getter(leaves: list[bytes], name: str = "sha256") -> Any:
    levels = ref.levels(leaves, name)
    return lambda n: levels[n.level][n.index]


# --- public vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", _cases("inclusion"))
def test_inclusion_vectors(v: dict[str, Any]) -> None:
    args = (SHA256, v["leafIdx"], v["treeSize"], _b(v["leafHash"]), _proof(v["proof"]), _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("v", _cases("consistency"))
def test_consistency_vectors(v: dict[str, Any]) -> None:
    args = (SHA256, v["size1"], v["size2"], _proof(v["proof"]), _b(v["root1"]), _b(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize("v", _cases("subtreeinclusion"))
def test_subtree_inclusion_vectors(v: dict[str, Any]) -> None:
    args = (SHA256, v["leafIdx"], v["start"], v["end"], _b(v["leafHash"]), _proof(v["proof"]), _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_subtree_inclusion(*args)
    else:
        verify_subtree_inclusion(*args)


def _prefix_subtree_cases() -> list[Any]:
    """Subtree consistency vectors for subtrees [0, end), end > 0: an ordinary consistency proof.

    Subtrees starting past 0 and empty subtrees (whose proofs accept any tree root) are not part of our API.
    """
    return [c for c in _cases("subtreeconsistency") if c.values[0]["start"] == 0 and c.values[0]["end"] > 0]


@pytest.mark.parametrize("v", _prefix_subtree_cases())
def test_subtree_consistency_vectors_from_zero(v: dict[str, Any]) -> None:
    args = (SHA256, v["end"], v["size"], _proof(v["proof"]), _b(v["root1"]), _b(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# --- hasher ---------------------------------------------------------------------------------------------


def test_prefixes_and_known_hashes() -> None:
    assert LEAF_PREFIX == b"\x00" and NODE_PREFIX == b"\x01"
    assert SHA256.empty_root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # RFC 6962 leaf hash of the empty entry, as used across CT test suites.
    assert SHA256.hash_leaf(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert SM3.empty_root().hex() == "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
    assert SM3.hash_leaf(b"abc") == hashlib.new("sm3", b"\x00abc").digest()
    a, b = SM3.hash_leaf(b"a"), SM3.hash_leaf(b"b")
    assert SM3.hash_children(a, b) == hashlib.new("sm3", b"\x01" + a + b).digest()
    assert SHA256.size == SM3.size == 32 and SM3.name == "sm3"
    assert repr(SHA256) == "Hasher('sha256')"


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError):
        Hasher("no-such-hash")


# --- planning + rehash + verify against the reference ---------------------------------------------------


@settings(deadline=None, max_examples=120)
@given(size=st.integers(1, 2000), data=st.data(), use_sm3=st.booleans())
def test_inclusion_matches_reference(size: int, data: st.DataObject, use_sm3: bool) -> None:
    hasher = SM3 if use_sm3 else SHA256
    index = data.draw(st.integers(0, size - 1))
    leaves = _leaves(size, b"inc", hasher)
    get = _node_getter(leaves, hasher.name)
    plan = plan_inclusion(index, size)
    for n in plan.nodes:
        assert n.end <= size, "plans fetch only complete subtrees"
    proof = plan.rehash([get(n) for n in plan.nodes], hasher)
    assert proof == ref.path(index, leaves, hasher.name)
    assert len(proof) == plan.proof_len == inclusion_proof_len(index, size)
    want_root = ref.mth(leaves, hasher.name)
    verify_inclusion(hasher, index, size, leaves[index], proof, want_root)
    assert root_from_inclusion(hasher, index, size, leaves[index], proof) == want_root


@settings(deadline=None, max_examples=120)
@given(size2=st.integers(1, 2000), data=st.data(), use_sm3=st.booleans())
def test_consistency_matches_reference(size2: int, data: st.DataObject, use_sm3: bool) -> None:
    hasher = SM3 if use_sm3 else SHA256
    size1 = data.draw(st.integers(1, size2))
    leaves = _leaves(size2, b"con", hasher)
    get = _node_getter(leaves, hasher.name)
    plan = plan_consistency(size1, size2)
    for n in plan.nodes:
        assert n.end <= size2
    proof = plan.rehash([get(n) for n in plan.nodes], hasher)
    assert proof == ref.proof(size1, leaves, hasher.name)
    assert len(proof) == plan.proof_len
    verify_consistency(
        hasher, size1, size2, proof, ref.mth(leaves[:size1], hasher.name), ref.mth(leaves, hasher.name)
    )


def test_exhaustive_small_trees() -> None:
    for size in range(1, 70):
        leaves = _leaves(size, b"small")
        get = _node_getter(leaves)
        want = ref.mth(leaves)
        assert root(SHA256, leaves) == want
        for index in range(size):
            plan = plan_inclusion(index, size)
            assert plan.rehash([get(n) for n in plan.nodes]) == ref.path(index, leaves)
        for size1 in range(1, size + 1):
            plan = plan_consistency(size1, size)
            proof = plan.rehash([get(n) for n in plan.nodes])
            assert proof == ref.proof(size1, leaves)
            verify_consistency(SHA256, size1, size, proof, ref.mth(leaves[:size1]), want)


def test_ephemeral_node_is_rehashed_from_perfect_parts() -> None:
    # Leaf 0 of 7: the sibling at level 2 covers leaves 4..6, split into NodeID(1, 2) and NodeID(0, 6).
    plan = plan_inclusion(0, 7)
    assert plan.nodes == (NodeID(0, 1), NodeID(1, 1), NodeID(1, 2), NodeID(0, 6))
    assert (plan.begin, plan.end, plan.proof_len) == (2, 4, 3)
    # 6 -> 7: the old tree's last perfect subtree is NodeID(1, 2); its path holds NodeID(0, 6), NodeID(2, 0).
    assert plan_consistency(6, 7).nodes == (NodeID(1, 2), NodeID(0, 6), NodeID(2, 0))
    assert plan_consistency(4, 8).nodes == (NodeID(2, 1),)
    assert plan_consistency(5, 5).nodes == () and plan_consistency(0, 9).nodes == ()


def test_node_id_range() -> None:
    assert (NodeID(3, 2).begin, NodeID(3, 2).end) == (16, 24)


def test_plan_preconditions() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            plan_inclusion(index, size)
    for size1, size2 in [(3, 2), (-1, 2)]:
        with pytest.raises(ValueError):
            plan_consistency(size1, size2)
    with pytest.raises(ValueError, match="got 1 hashes, want 4"):
        plan_inclusion(0, 7).rehash([b"x" * 32])


# --- verification failures ------------------------------------------------------------------------------


def _flip(h: bytes, at: int) -> bytes:
    return h[:at] + bytes([h[at] ^ 0x01]) + h[at + 1 :]


@settings(deadline=None, max_examples=80)
@given(size=st.integers(2, 600), data=st.data())
def test_tampered_inclusion_proofs_fail(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    leaves = _leaves(size, b"tamper")
    proof = ref.path(index, leaves)
    want = ref.mth(leaves)
    i = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:i], _flip(proof[i], data.draw(st.integers(0, 31))), *proof[i + 1 :]]
    with pytest.raises(ProofError, match=r"got root .*, want "):
        verify_inclusion(SHA256, index, size, leaves[index], bad, want)
    with pytest.raises(ProofError):
        verify_inclusion(SHA256, index, size, _flip(leaves[index], 0), proof, want)
    with pytest.raises(ProofError):
        verify_inclusion(SHA256, index, size, leaves[index], proof[:-1], want)
    with pytest.raises(ProofError):
        verify_inclusion(SHA256, index, size, leaves[index], [*proof, proof[0]], want)
    with pytest.raises(ProofError):
        verify_inclusion(SHA256, index, size, leaves[index], proof, _flip(want, 31))
    other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index))
    with pytest.raises(ProofError):
        verify_inclusion(SHA256, other, size, leaves[index], proof, want)


@settings(deadline=None, max_examples=80)
@given(size2=st.integers(3, 600), data=st.data())
def test_tampered_consistency_proofs_fail(size2: int, data: st.DataObject) -> None:
    size1 = data.draw(st.integers(1, size2 - 1))
    leaves = _leaves(size2, b"tamper-c")
    proof = ref.proof(size1, leaves)
    root1, root2 = ref.mth(leaves[:size1]), ref.mth(leaves)
    i = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:i], _flip(proof[i], data.draw(st.integers(0, 31))), *proof[i + 1 :]]
    with pytest.raises(ProofError, match=r"got (old|new) root .*, want "):
        verify_consistency(SHA256, size1, size2, bad, root1, root2)
    with pytest.raises(ProofError):
        verify_consistency(SHA256, size1, size2, proof, _flip(root1, 3), root2)
    with pytest.raises(ProofError):
        verify_consistency(SHA256, size1, size2, proof, root1, _flip(root2, 3))
    with pytest.raises(ProofError):
        verify_consistency(SHA256, size1, size2, proof[:-1], root1, root2)


def test_proof_errors_say_got_and_want() -> None:
    leaves = _leaves(5)
    with pytest.raises(ProofError, match="got 1 proof hashes, want 3") as e:
        verify_inclusion(SHA256, 0, 5, leaves[0], [leaves[1]], ref.mth(leaves))
    assert isinstance(e.value, EvidenceError) and "want 3" in e.value.diagnostics()
    with pytest.raises(ProofError, match="leaf hash: got 3 bytes, want 32"):
        verify_inclusion(SHA256, 0, 1, b"abc", [], leaves[0])
    with pytest.raises(ProofError, match="proof hash 0: got 31 bytes, want 32"):
        verify_inclusion(SHA256, 0, 2, leaves[0], [leaves[1][:31]], ref.mth(leaves[:2]))
    with pytest.raises(ProofError, match="index 5 is not in a tree of size 5"):
        verify_inclusion(SHA256, 5, 5, leaves[0], [], leaves[0])


def test_consistency_from_empty_tree_only_for_witnesses() -> None:
    empty = SHA256.empty_root()
    r = root(SHA256, _leaves(3))
    with pytest.raises(ProofError, match="old size 0"):
        verify_consistency(SHA256, 0, 3, [], empty, r)
    verify_consistency(SHA256, 0, 3, [], empty, r, allow_empty_old=True)
    verify_consistency(SHA256, 0, 0, [], empty, empty, allow_empty_old=True)
    with pytest.raises(ProofError, match="got 1 proof hashes, want 0"):
        verify_consistency(SHA256, 0, 3, [r], empty, r, allow_empty_old=True)
    with pytest.raises(ProofError, match="got old root"):
        verify_consistency(SHA256, 0, 3, [], r, r, allow_empty_old=True)
    with pytest.raises(ProofError, match="got new root"):
        verify_consistency(SHA256, 0, 0, [], empty, r, allow_empty_old=True)
    with pytest.raises(ProofError, match="requires 0 <= size1 <= size2"):
        verify_consistency(SHA256, 4, 3, [], r, r, allow_empty_old=True)


def test_subtree_inclusion_rejects_bad_subtrees() -> None:
    leaves = _leaves(8)
    sub = leaves[4:8]
    proof = ref.path(1, sub)
    verify_subtree_inclusion(SHA256, 5, 4, 8, leaves[5], proof, ref.mth(sub))
    with pytest.raises(ProofError, match="not a valid subtree"):
        verify_subtree_inclusion(SHA256, 5, 2, 6, leaves[5], proof, ref.mth(sub))
    with pytest.raises(ProofError, match="not in subtree"):
        verify_subtree_inclusion(SHA256, 3, 4, 8, leaves[5], proof, ref.mth(sub))


# --- compact range --------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6), use_sm3=st.booleans())
def test_compact_range_matches_reference(sizes: list[int], use_sm3: bool) -> None:
    hasher = SM3 if use_sm3 else SHA256
    leaves = _leaves(sum(sizes), b"cr", hasher)
    cr = CompactRange(hasher)
    done = 0
    for k in sizes:
        batch = leaves[done : done + k]
        if k % 2:
            for h in batch:
                cr.append(h)
        else:
            cr.extend(batch)
        done += k
        assert cr.size == done
        assert cr.root() == ref.mth(leaves[:done], hasher.name)
        assert len(cr.hashes) == done.bit_count()
        # A stored frontier resumes to the same state.
        resumed = CompactRange(hasher, cr.size, cr.hashes)
        assert resumed.root() == cr.root()


def test_compact_range_frontier_shape() -> None:
    leaves = _leaves(13)
    cr = CompactRange(SHA256, 0, ())
    cr.extend(leaves)
    levels = ref.levels(leaves)
    assert cr.hashes == [levels[3][0], levels[2][2], levels[0][12]]
    assert CompactRange().root() == SHA256.empty_root()
    with pytest.raises(ValueError, match="got 1 hashes, want 2"):
        CompactRange(SHA256, 3, [leaves[0]])


def test_root_of_nothing_is_empty_root() -> None:
    assert root(SHA256, []) == SHA256.empty_root()
    assert root(SM3, []) == SM3.empty_root()
    assert ProofPlan(()).rehash([]) == []
