"""evidence.ers: the RFC 4998 hash tree against a slow reference, DER round-trip, verification failures.

Tokens come from the project's TSA core in-process (`LocalTimeStamper`); Bouncy Castle's independent
check of the same records is in tests/integration/test_evidence_records.py.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.errors import FormatError, VerificationError
from evidence.ers import (
    ArchiveStamp,
    EvidenceRecordData,
    build_tree,
    hash_renewal_item,
    parse_record,
    root_from_reduced,
    timestamp_renewal_item,
    verify_record,
)
from notary_bridge import pki
from notary_bridge.tsa import LocalTimeStamper


def _ref_root(alg: str, leaves: list[bytes]) -> bytes:
    """Reference: RFC 4998 §4.2 steps 3-4 literally (pairs hashed in binary ascending order, odd one up)."""
    level = leaves
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            pair = level[i:i + 2]
            nxt.append(hashlib.new(alg, b"".join(sorted(pair))).digest() if len(pair) == 2 else pair[0])
        level = nxt
    return level[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True),
       st.sampled_from(["sha256", "sha512"]))
def test_tree_matches_reference_and_every_reduced_tree_leads_to_root(leaves: list[bytes], alg: str) -> None:
    root, reduced = build_tree(alg, [[h] for h in leaves])
    assert root == _ref_root(alg, leaves)
    for h, rht in zip(leaves, reduced, strict=True):
        if rht is None:
            assert len(leaves) == 1 and root == h
        else:
            assert h in rht[0] and len(rht[0]) == 2 and all(len(lst) == 1 for lst in rht[1:])
            assert root_from_reduced(alg, rht) == root


def test_groups_and_duplicates() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    root, reduced = build_tree("sha256", [[a, b], [c], [a, b]])
    assert reduced[0] == reduced[2] and reduced[0] is not None and set(reduced[0][0]) == {a, b}
    assert root_from_reduced("sha256", reduced[0]) == root == root_from_reduced("sha256", reduced[1])  # type: ignore[arg-type]
    alone, (rht,) = build_tree("sha256", [[a, b]])
    assert rht == (tuple(sorted([a, b])),) and alone == hashlib.sha256(min(a, b) + max(a, b)).digest()
    with pytest.raises(ValueError):
        build_tree("sha256", [])


@pytest.fixture(scope="module")
def tsa() -> dict[str, Any]:
    ca_key, ca_cert = pki.make_ca("ERS Unit Root")
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, "ERS Unit TSA")
    return {"stamper": LocalTimeStamper(key, cert, [ca_cert]), "ca": ca_cert}


def _record(tsa: dict[str, Any], data: bytes, others: int = 3) -> EvidenceRecordData:
    h = hashlib.sha256(data).digest()
    leaves = [[h], *([hashlib.sha256(bytes([i])).digest()] for i in range(others))]
    root, reduced = build_tree("sha256", leaves)
    return EvidenceRecordData.first(ArchiveStamp("sha256", reduced[0], tsa["stamper"].timestamp(root, "sha256")))


def test_round_trip_and_verify_through_renewals(tsa: dict[str, Any]) -> None:
    data = b"the lease agreement"
    rec = _record(tsa, data)
    der = rec.to_der()
    assert parse_record(der) == rec and parse_record(der).to_der() == der
    digests = {"sha256": hashlib.sha256(data).digest(), "sha512": hashlib.sha512(data).digest()}
    assert len(verify_record(der, digests, [tsa["ca"]])) == 1

    # timestamp renewal: a tree of one over the hash of the earlier timeStamp
    alg, group = timestamp_renewal_item(rec)
    root, (rht,) = build_tree(alg, [group])
    rec = rec.with_timestamp_renewal(ArchiveStamp(alg, rht, tsa["stamper"].timestamp(root, alg)))
    # hash-tree renewal with SHA-512, shared with another record
    item = hash_renewal_item(rec, "sha512", digests["sha512"])
    root, (rht, _) = build_tree("sha512", [[item], [hashlib.sha512(b"x").digest()]])
    rec = rec.with_hash_renewal(ArchiveStamp("sha512", rht, tsa["stamper"].timestamp(root, "sha512")))
    # a second timestamp renewal covers both earlier stamps of the new chain... and of one stamp here
    alg, group = timestamp_renewal_item(rec)
    root, (rht,) = build_tree(alg, [group])
    rec = rec.with_timestamp_renewal(ArchiveStamp(alg, rht, tsa["stamper"].timestamp(root, alg)))
    alg, group = timestamp_renewal_item(rec)
    assert len(group) == 2
    root, (rht,) = build_tree(alg, [group])
    rec = rec.with_timestamp_renewal(ArchiveStamp(alg, rht, tsa["stamper"].timestamp(root, alg)))
    der = rec.to_der()
    reports = verify_record(der, digests, [tsa["ca"]])
    assert [(r.chain, r.index, r.hash_algorithm) for r in reports] == [
        (0, 0, "sha256"), (0, 1, "sha256"), (1, 0, "sha512"), (1, 1, "sha512"), (1, 2, "sha512")]
    assert parse_record(der).digest_algorithms == ("sha256", "sha512")

    with pytest.raises(VerificationError, match="not in the first list"):
        verify_record(der, {**digests, "sha256": hashlib.sha256(b"another document").digest()}, [tsa["ca"]])
    with pytest.raises(VerificationError, match="sha512 digest was not given"):
        verify_record(der, {"sha256": digests["sha256"]}, [tsa["ca"]])
    other_ca = pki.make_ca("Someone Else")[1]
    with pytest.raises(VerificationError):
        verify_record(der, digests, [other_ca])


def test_tampering_is_caught(tsa: dict[str, Any]) -> None:
    data = b"invoice 42"
    rec = _record(tsa, data)
    digests = {"sha256": hashlib.sha256(data).digest()}
    ats = rec.last
    assert ats.reduced is not None
    sibling = bytearray(ats.reduced[1][0])
    sibling[0] ^= 1
    bad_tree = EvidenceRecordData.first(ArchiveStamp("sha256", (ats.reduced[0], (bytes(sibling),),
                                                                *ats.reduced[2:]), ats.token))
    with pytest.raises(VerificationError, match="message imprint"):
        verify_record(bad_tree.to_der(), digests, [tsa["ca"]])
    der = bytearray(rec.to_der())
    i = der.find(b"ERS Unit TSA")  # inside the embedded certificate: its signature breaks
    der[i] ^= 0x20
    with pytest.raises(VerificationError):
        verify_record(bytes(der), digests, [tsa["ca"]])
    for junk in (b"", b"\x30\x00", rec.to_der()[:-3]):
        with pytest.raises(FormatError):
            parse_record(junk)
