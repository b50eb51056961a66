"""Is a packet court-ready? What its proof carries, judged from the proof alone.

A packet is *court-ready* only when its checkpoint is cosigned by a quorum of the policy's witnesses and
timestamped by an RFC 3161 authority. Anything less is *preliminary*: the packet says so on every page and
lists what is missing, and its declaration claims only what it contains. Judging from the bundle (not from
the depository's database flags) means the words printed can never say more than the attachments prove.

The witness helpers (`witness_rows`, `parse_policy`, `quorum_text`) live here because readiness is where
they are decided; `evidence.packet` re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from evidence.bundle import ProofBundle
from evidence.checkpoint import SignedCheckpoint
from evidence.cosignature import parse_cosignature, verify_cosignature
from evidence.errors import EvidenceError, FormatError
from evidence.policy import Policy


@dataclass(frozen=True)
class WitnessRow:
    """A witness named by the policy and what its cosignature (if any) on the checkpoint says."""

    name: str
    key_id: str
    time: datetime | None
    verified: bool
    note: str


def witness_rows(bundle: ProofBundle, policy: Policy | None) -> tuple[list[WitnessRow], bool | None]:
    """Each policy witness's cosignature state and whether the quorum is met (None: no policy)."""
    if policy is None:
        return [], None
    signed = SignedCheckpoint.from_text(bundle.checkpoint)
    rows, ok_names = [], set()
    for w in policy.witnesses:
        line = next(
            (s.to_line() for s in signed.signatures if (s.name, s.key_id) == (w.verifier.name, w.verifier.key_id)),
            None,
        )
        kid = f"{w.verifier.key_id:08x}"
        if line is None:
            rows.append(WitnessRow(w.name, kid, None, False, "no cosignature"))
            continue
        try:
            t = verify_cosignature(signed.body, line, w.verifier)
        except EvidenceError as e:
            try:
                when: datetime | None = datetime.fromtimestamp(parse_cosignature(line).timestamp, UTC)
            except (EvidenceError, ValueError, OverflowError):
                when = None
            rows.append(WitnessRow(w.name, kid, when, False, e.diagnostics()))
            continue
        ok_names.add(w.name)
        rows.append(WitnessRow(w.name, kid, datetime.fromtimestamp(t, UTC), True, "verified"))
    return rows, policy.satisfied(ok_names)


def parse_policy(text: str | None) -> Policy | None:
    """The bundle's policy, or None when it has none (or an unparsable one: the verifier says so)."""
    if not text:
        return None
    try:
        return Policy.from_text(text)
    except FormatError:
        return None


def quorum_text(policy: Policy) -> str:
    """'2 of 3 (group "court")' style summary of the quorum line."""
    groups = {g.name: g for g in policy.groups}
    q = policy.quorum
    if q == "none":
        return "none required"
    if q in groups:
        g = groups[q]
        return f"{g.threshold} of {len(g.members)} (group {q})"
    return f"1 of 1 (witness {q})"


@dataclass(frozen=True)
class Readiness:
    """What one deposit's proof carries, and what a court-ready packet would still need.

    `witnesses` are the names whose cosignatures verified; `quorum` the policy's k-of-n text (None: no
    policy); `missing` plain-language items, empty when court-ready.
    """

    deposit_id: str
    timestamped: bool
    tsa_name: str | None
    witnesses: tuple[str, ...]
    quorum: str | None
    quorum_met: bool
    missing: tuple[str, ...]

    @property
    def court_ready(self) -> bool:
        return not self.missing


def common_name(name: str) -> str:
    """'Demo TSA' from asn1crypto's 'Common Name: Demo TSA, Organization: …' (the common name is enough)."""
    for part in name.split(", "):
        if part.startswith("Common Name: "):
            return part[len("Common Name: "):]
    return name


def readiness(bundle: ProofBundle) -> Readiness:
    """Court-ready when the bundle has a timestamp token and cosignatures meeting a non-empty quorum."""
    from evidence.timestamp import parse_token

    missing = []
    tsa = None
    if bundle.timestamp_token is None:
        missing.append("an RFC 3161 timestamp (without one, only the depository vouches for the time)")
    else:
        try:
            tsa = common_name(parse_token(bundle.timestamp_token).tsa_name or "") or None
        except EvidenceError:
            tsa = None
    policy = parse_policy(bundle.witness_policy)
    rows, met = witness_rows(bundle, policy)
    names = tuple(r.name for r in rows if r.verified)
    q = quorum_text(policy) if policy is not None else None
    if policy is None or policy.quorum == "none":
        missing.append("cosignatures by independent witnesses (this depository has no witness quorum)")
    elif not met:
        missing.append(f"cosignatures by a quorum of the witnesses ({q}; {len(names)} so far)")
    return Readiness(bundle.deposit_id, bundle.timestamp_token is not None, tsa, names, q, bool(met),
                     tuple(missing))


def packet_readiness(bundles: Sequence[ProofBundle]) -> list[Readiness]:
    """Readiness of each deposit of a (matter) packet; the packet is court-ready only if all are."""
    return [readiness(b) for b in bundles]
