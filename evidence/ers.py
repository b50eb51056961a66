"""RFC 4998 Evidence Records: build, renew and verify them, offline.

An EvidenceRecord proves that a data object (a deposit's content) existed at a time, and keeps proving it
after the TSA's certificate expires or its hash weakens, by a sequence of ArchiveTimeStamps (ATS):

    EvidenceRecord ::= SEQUENCE { version INTEGER { v1(1) }, digestAlgorithms SEQUENCE OF
        AlgorithmIdentifier, cryptoInfos [0] ..., encryptionInfo [1] ..., archiveTimeStampSequence }
    ArchiveTimeStampSequence ::= SEQUENCE OF ArchiveTimeStampChain      (one chain per hash algorithm)
    ArchiveTimeStampChain ::= SEQUENCE OF ArchiveTimeStamp              (one ATS per timestamp renewal)
    ArchiveTimeStamp ::= SEQUENCE { digestAlgorithm [0] AlgorithmIdentifier OPTIONAL, attributes [1]
        OPTIONAL, reducedHashtree [2] SEQUENCE OF PartialHashtree OPTIONAL, timeStamp ContentInfo }
    PartialHashtree ::= SEQUENCE OF OCTET STRING

(RFC 4998 §3 and the ASN.1 module of its appendix A, IMPLICIT TAGS.)

The hash tree (§4.2) is binary here: a node is H(min(a, b) || max(a, b)) (binary ascending order), so a
reduced hash tree has one sibling per level. Its first list holds the item's own hashes (a data object's
hash; on renewal the hashes of every earlier timestamp of the chain) and, for a single hash, its first
sibling too: RFC 4998 hashes a first list of one value again, Bouncy Castle takes it as it is, and a list
of two values reads the same to both. An item alone in its tree has no reduced hash tree when it is a
single hash (the imprint is the hash, §4.3 note).

* Timestamp renewal (§5.2): a new ATS in the last chain, over the hash of the timeStamp field of every ATS
  before it in that chain (RFC 4998 asks for the last; Bouncy Castle checks them all, and both hold).
* Hash-tree renewal (§5.3): a new chain with a stronger algorithm H. The item is
  h' = H(H(data) || H(DER(ArchiveTimeStampSequence so far))).

`verify_record` checks every chain and every ATS (tree, imprint, token signature and chain to the given
roots at its genTime, algorithm continuity, each renewal made while the stamp it renews was still valid).
No I/O, no network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from asn1crypto import x509 as ax509

from evidence.errors import FormatError, VerificationError
from evidence.timestamp import normalize_hash_name, parse_token, verify_token

__all__ = [
    "ArchiveStamp",
    "EvidenceRecordData",
    "StampReport",
    "build_tree",
    "hash_renewal_item",
    "parse_record",
    "root_from_reduced",
    "timestamp_renewal_item",
    "verify_record",
]

#: EvidenceRecord version (RFC 4998 §3.1: v1(1)).
ERS_VERSION = 1

# ---- ASN.1 (RFC 4998 appendix A, IMPLICIT TAGS) ----------------------------------------------------------


class PartialHashtree(core.SequenceOf):
    _child_spec = core.OctetString


class ReducedHashtree(core.SequenceOf):
    _child_spec = PartialHashtree


class _Attributes(core.SetOf):
    _child_spec = cms.CMSAttribute


class _CryptoInfos(core.SequenceOf):
    _child_spec = cms.CMSAttribute


class _EncryptionInfo(core.Sequence):
    _fields = [  # noqa: RUF012 (asn1crypto's declarative schema)
        ("encryption_info_type", core.ObjectIdentifier),
        ("encryption_info_value", core.Any),
    ]


class _ArchiveTimeStamp(core.Sequence):
    _fields = [  # noqa: RUF012
        ("digest_algorithm", algos.DigestAlgorithm, {"implicit": 0, "optional": True}),
        ("attributes", _Attributes, {"implicit": 1, "optional": True}),
        ("reduced_hashtree", ReducedHashtree, {"implicit": 2, "optional": True}),
        ("time_stamp", cms.ContentInfo),
    ]


class _ArchiveTimeStampChain(core.SequenceOf):
    _child_spec = _ArchiveTimeStamp


class _ArchiveTimeStampSequence(core.SequenceOf):
    _child_spec = _ArchiveTimeStampChain


class _DigestAlgorithms(core.SequenceOf):
    _child_spec = algos.DigestAlgorithm


class _EvidenceRecord(core.Sequence):
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("digest_algorithms", _DigestAlgorithms),
        ("crypto_infos", _CryptoInfos, {"implicit": 0, "optional": True}),
        ("encryption_info", _EncryptionInfo, {"implicit": 1, "optional": True}),
        ("archive_time_stamp_sequence", _ArchiveTimeStampSequence),
    ]


# ---- hash tree (RFC 4998 §4.2, binary) -------------------------------------------------------------------

Reduced = tuple[tuple[bytes, ...], ...]


def _hash(alg: str, *parts: bytes) -> bytes:
    h = hashlib.new(alg)
    for p in parts:
        h.update(p)
    return h.digest()


def node_hash(alg: str, values: Sequence[bytes]) -> bytes:
    """The value a list of a reduced hash tree stands for: one value as it is, several hashed sorted."""
    if len(values) == 1:
        return bytes(values[0])
    return _hash(alg, *sorted(bytes(v) for v in values))


def build_tree(alg: str, groups: Sequence[Sequence[bytes]]) -> tuple[bytes, list[Reduced | None]]:
    """A binary RFC 4998 hash tree over `groups` (each an item's own hashes); (root, reduced tree per item).

    Requires at least one group, each non-empty. Equal groups share one leaf. The root is what the TSA
    stamps; `root_from_reduced(alg, reduced[i]) == root` for every i (None: the imprint is the item itself).
    """
    if not groups or any(not g for g in groups):
        raise ValueError("build_tree needs at least one non-empty group")
    keys: dict[tuple[bytes, ...], int] = {}
    uniq: list[tuple[bytes, ...]] = []
    for g in groups:
        k = tuple(sorted(bytes(v) for v in g))
        if k not in keys:
            keys[k] = len(uniq)
            uniq.append(k)
    level = [node_hash(alg, g) for g in uniq]
    siblings: list[list[bytes]] = [[] for _ in uniq]
    pos = list(range(len(uniq)))
    while len(level) > 1:
        for i, p in enumerate(pos):
            s = p ^ 1
            if s < len(level):
                siblings[i].append(level[s])
            pos[i] = p // 2
        level = [_branch(alg, level[j], level[j + 1]) if j + 1 < len(level) else level[j]
                 for j in range(0, len(level), 2)]
    root = level[0]
    reduced_uniq: list[Reduced | None] = []
    for g, sib in zip(uniq, siblings, strict=True):
        if not sib:
            reduced_uniq.append(None if len(g) == 1 else (g,))
        elif len(g) == 1:
            reduced_uniq.append(((g[0], sib[0]), *((s,) for s in sib[1:])))
        else:
            reduced_uniq.append((g, *((s,) for s in sib)))
    return root, [reduced_uniq[keys[tuple(sorted(bytes(v) for v in g))]] for g in groups]


def _branch(alg: str, a: bytes, b: bytes) -> bytes:
    return _hash(alg, a, b) if a <= b else _hash(alg, b, a)


def root_from_reduced(alg: str, reduced: Reduced) -> bytes:
    """Rehash a reduced hash tree (RFC 4998 §4.3 step 3). Requires at least one non-empty list."""
    if not reduced or any(not lst for lst in reduced):
        raise FormatError("reduced hash tree: empty list")
    h = node_hash(alg, reduced[0])
    for lst in reduced[1:]:
        h = node_hash(alg, [h, *lst])
    return h


# ---- the record ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveStamp:
    """One ArchiveTimeStamp: its digest algorithm, reduced hash tree (None if absent) and DER token."""

    hash_algorithm: str
    reduced: Reduced | None
    token: bytes

    def to_asn1(self) -> _ArchiveTimeStamp:
        value: dict[str, object] = {
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": self.hash_algorithm}),
            "time_stamp": cms.ContentInfo.load(self.token),
        }
        if self.reduced is not None:
            value["reduced_hashtree"] = ReducedHashtree([PartialHashtree(list(lst)) for lst in self.reduced])
        return _ArchiveTimeStamp(value)

    @property
    def token_hash_input(self) -> bytes:
        """The DER of the timeStamp field: what a timestamp renewal hashes."""
        return self.token


@dataclass(frozen=True)
class EvidenceRecordData:
    """An EvidenceRecord: its chains of ATSs, oldest first. `to_der` / `parse_record` round-trip."""

    chains: tuple[tuple[ArchiveStamp, ...], ...]

    @property
    def digest_algorithms(self) -> tuple[str, ...]:
        out: list[str] = []
        for chain in self.chains:
            for ats in chain:
                if ats.hash_algorithm not in out:
                    out.append(ats.hash_algorithm)
        return tuple(out)

    @property
    def last(self) -> ArchiveStamp:
        return self.chains[-1][-1]

    def to_der(self) -> bytes:
        return self._asn1(self.chains).dump()

    @staticmethod
    def _sequence(chains: Sequence[Sequence[ArchiveStamp]]) -> _ArchiveTimeStampSequence:
        return _ArchiveTimeStampSequence([_ArchiveTimeStampChain([a.to_asn1() for a in c]) for c in chains])

    def _asn1(self, chains: Sequence[Sequence[ArchiveStamp]]) -> _EvidenceRecord:
        return _EvidenceRecord({
            "version": ERS_VERSION,
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": a}) for a in self.digest_algorithms],
            "archive_time_stamp_sequence": self._sequence(chains),
        })

    def sequence_der(self, upto: int | None = None) -> bytes:
        """DER of the ArchiveTimeStampSequence of chains[:upto] (all when None): what a hash renewal hashes."""
        return self._sequence(self.chains[:upto] if upto is not None else self.chains).dump()

    @classmethod
    def first(cls, stamp: ArchiveStamp) -> EvidenceRecordData:
        return cls(((stamp,),))

    def with_timestamp_renewal(self, stamp: ArchiveStamp) -> EvidenceRecordData:
        if stamp.hash_algorithm != self.last.hash_algorithm:
            raise ValueError("a timestamp renewal keeps the chain's hash algorithm")
        return EvidenceRecordData((*self.chains[:-1], (*self.chains[-1], stamp)))

    def with_hash_renewal(self, stamp: ArchiveStamp) -> EvidenceRecordData:
        return EvidenceRecordData((*self.chains, (stamp,)))


def parse_record(der: bytes) -> EvidenceRecordData:
    """Read a DER EvidenceRecord; FormatError if it is not one. Checks nothing else."""
    try:
        er = _EvidenceRecord.load(bytes(der), strict=True)
        if er["version"].native != ERS_VERSION:
            raise FormatError(f"evidence record version: got {er['version'].native}, want {ERS_VERSION}")
        chains = []
        for chain in er["archive_time_stamp_sequence"]:
            stamps = []
            for ats in chain:
                token = ats["time_stamp"].dump()
                alg_field = ats["digest_algorithm"]
                alg = (alg_field["algorithm"].native if alg_field.native is not None
                       else parse_token(token).hash_algorithm)
                rht = ats["reduced_hashtree"]
                reduced = (tuple(tuple(bytes(v.native) for v in lst) for lst in rht)
                           if rht.native is not None else None)
                stamps.append(ArchiveStamp(alg, reduced, token))
            if not stamps:
                raise FormatError("evidence record: an empty ArchiveTimeStampChain")
            chains.append(tuple(stamps))
        if not chains:
            raise FormatError("evidence record: no ArchiveTimeStampChain")
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise FormatError(f"not a DER RFC 4998 EvidenceRecord: {e}") from e
    return EvidenceRecordData(tuple(chains))


# ---- renewal inputs --------------------------------------------------------------------------------------


def timestamp_renewal_item(record: EvidenceRecordData) -> tuple[str, tuple[bytes, ...]]:
    """(algorithm, group) a timestamp renewal must cover: the hashes of every timeStamp of the last chain."""
    alg = record.last.hash_algorithm
    return alg, tuple(_hash(alg, a.token_hash_input) for a in record.chains[-1])


def hash_renewal_item(record: EvidenceRecordData, alg: str, data_digest: bytes) -> bytes:
    """h' = H(H(data) || H(ArchiveTimeStampSequence)) for a hash-tree renewal with `alg` (RFC 4998 §5.3).

    `data_digest` is H(data) under the new algorithm.
    """
    alg = normalize_hash_name(alg)
    return _hash(alg, data_digest, _hash(alg, record.sequence_der()))


# ---- verification ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StampReport:
    """One verified ATS: where it sits, its algorithm, genTime, and its TSA certificate's notAfter."""

    chain: int
    index: int
    hash_algorithm: str
    gen_time: dt.datetime
    tsa_name: str | None
    tsa_not_after: dt.datetime | None


def verify_record(
    der: bytes,
    data_digests: Mapping[str, bytes],
    ca_pems: Sequence[bytes],
) -> list[StampReport]:
    """Verify an EvidenceRecord for a data object whose digests (per algorithm name) are `data_digests`.

    Every chain's algorithm must appear in `data_digests` (H(data) under it). Checks, for each ATS: the
    item is in the first list of its reduced hash tree (or is the imprint), the tree rehashes to the
    imprint, the imprint algorithm is the ATS's, the token verifies and chains to `ca_pems` at its
    genTime; within a chain each ATS covers every earlier timeStamp and keeps the algorithm; every
    later ATS was made no earlier than the one before and before that one's TSA certificate expired.
    Raises FormatError or VerificationError naming the failed check; returns one report per ATS.
    """
    record = parse_record(der)
    digests = {normalize_hash_name(k): bytes(v) for k, v in data_digests.items()}
    reports: list[StampReport] = []
    prev: StampReport | None = None
    for ci, chain in enumerate(record.chains):
        alg = chain[0].hash_algorithm
        if alg not in digests:
            raise VerificationError(f"chain {ci}: uses {alg}; the data's {alg} digest was not given")
        item = digests[alg]
        if ci > 0:
            item = _hash(alg, item, _hash(alg, record.sequence_der(ci)))
        for ai, ats in enumerate(chain):
            where = f"chain {ci} stamp {ai}"
            if ats.hash_algorithm != alg:
                raise VerificationError(f"{where}: algorithm {ats.hash_algorithm}, want the chain's {alg}")
            wanted = [item] if ai == 0 else [_hash(alg, a.token_hash_input) for a in chain[:ai]]
            _check_covered(where, alg, ats, wanted)
            root = root_from_reduced(alg, ats.reduced) if ats.reduced is not None else wanted[0]
            try:
                info = verify_token(ats.token, root, alg, ca_pems)
            except VerificationError as e:
                raise VerificationError(f"{where}: {e.diagnostics()}") from e
            not_after = (ax509.Certificate.load(info.tsa_cert).not_valid_after if info.tsa_cert else None)
            rep = StampReport(ci, ai, alg, info.gen_time, info.tsa_name, not_after)
            if prev is not None:
                if rep.gen_time < prev.gen_time:
                    raise VerificationError(f"{where}: genTime {rep.gen_time} is before the previous stamp's")
                if prev.tsa_not_after is not None and rep.gen_time > prev.tsa_not_after:
                    raise VerificationError(
                        f"{where}: made at {rep.gen_time}, after the previous stamp's TSA certificate expired "
                        f"({prev.tsa_not_after}): the chain of evidence is broken")
            reports.append(rep)
            prev = rep
    return reports


def _check_covered(where: str, alg: str, ats: ArchiveStamp, wanted: Sequence[bytes]) -> None:
    if ats.reduced is None:
        if len(wanted) != 1:
            raise VerificationError(f"{where}: no reduced hash tree, but {len(wanted)} hashes to cover")
        return  # the imprint itself must be the item: verify_token checks that
    first = set(ats.reduced[0])
    for w in wanted:
        if w not in first:
            raise VerificationError(f"{where}: {alg}:{w.hex()} is not in the first list of the reduced hash tree")
