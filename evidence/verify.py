"""Offline verification of an evidence packet (PDF) or a proof bundle (JSON): one `Check` per question.

Nothing here touches the network or a database; the only inputs are the packet or bundle bytes, the
original file when the user has it, and a trust directory the user obtained independently:

    trust/log.vkey            the log's Ed25519 note verifier key (its name is the log origin)
    trust/log-sm2.pem         the log's SM2 public key (PEM SubjectPublicKeyInfo)
    trust/witness-policy.txt  C2SP tlog-policy: the witnesses and the quorum
    trust/tsa-ca.pem          the TSA's root
    trust/packet-ca.pem       the packet signer's root

Any of them may be missing. Without a trust file, the matching check uses the copy inside the packet
and says so ("untrusted keys"): that shows internal consistency, not who signed. A witness quorum or a
timestamp that is absent from the packet is reported "not present" and fails only when the trust
directory says it is required (witness-policy.txt or tsa-ca.pem present).

Each check is independent, so altering one thing (a byte of the file, a proof hash, the checkpoint, a
cosignature, the token, a byte of the PDF) makes the check about that thing fail and names it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence.bundle import ProofBundle
from evidence.capture_packet import capture_checks
from evidence.checkpoint import SignedCheckpoint, verify_checkpoint
from evidence.cosignature import parse_cosignature
from evidence.errors import EvidenceError, FormatError
from evidence.leaf import LeafData, meta_hash
from evidence.loops import outside_event_loop
from evidence.merkle import SHA256, verify_inclusion
from evidence.note import Ed25519Verifier, SM2Verifier
from evidence.packet import (
    CHECKPOINT,
    CHECKPOINT_BODY,
    ORIGINAL_PREFIX,
    PROOF_JSON,
    SIGNER_CHAIN,
    TIMESTAMP,
    TLOG_PROOF,
    TSA_CHAIN,
    parse_policy,
    witness_rows,
)
from evidence.policy import Policy
from evidence.sm2 import SM2PublicKey
from evidence.timestamp import parse_token, verify_token
from evidence.tlogproof import TlogProof

# The three verdicts of a check (docs/formats.md "Verification"): a claim proven, a piece of evidence the
# packet does not carry (neutral: it says what that leaves unproven), or a claim that is false.
VERIFIED, ABSENT, FAILED = "verified", "not present", "failed"
PASS, FAIL = VERIFIED, FAILED  # older names

NO_WITNESSES = ("no witness cosignatures: nobody independent of the depository confirms that the log showed "
                "everyone this same tree")
#: facts of a check that failed only because required evidence is absent (a preliminary packet)
MISSING_REQUIRED: dict[str, Any] = {"finding": "missing-required"}
NO_TIMESTAMP = "no timestamp token: only the depository vouches for the time"


@dataclass(frozen=True)
class Check:
    """One verification question: its verdict, what was found, and why it matters.

    `ok` is True only for *verified*: a check whose evidence is not present is not a pass. `facts` carries
    what a proven check established (times, names) for the plain-language summary.
    """

    name: str
    ok: bool
    detail: str
    explanation: str
    status: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status in ("", "pass", "fail"):
            object.__setattr__(self, "status", VERIFIED if self.ok and self.status != "fail" else FAILED)
        if self.status not in (VERIFIED, ABSENT, FAILED):
            raise ValueError(f"unknown check status {self.status!r}")
        object.__setattr__(self, "ok", self.status == VERIFIED)

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FileDigests:
    """The original file as its digests and size, for a caller that hashed it while it streamed in (the
    /verify page spools a large original to disk instead of holding it in memory)."""

    sha256: bytes
    sm3: bytes
    size: int

    @classmethod
    def of(cls, data: bytes) -> FileDigests:
        return cls(hashlib.sha256(data).digest(), hashlib.new("sm3", data).digest(), len(data))


OriginalFile = bytes | FileDigests


def absent(name: str, detail: str, explanation: str) -> Check:
    """A check whose evidence the packet does not carry: neutral, never a pass."""
    return Check(name, False, detail, explanation, ABSENT)


def all_passed(checks: list[Check]) -> bool:
    """Every check verified: nothing failed and nothing is missing."""
    return bool(checks) and all(c.status == VERIFIED for c in checks)


def none_failed(checks: list[Check]) -> bool:
    """Nothing is false (some evidence may be absent)."""
    return bool(checks) and not any(c.failed for c in checks)


@dataclass(frozen=True)
class Trust:
    """Independently obtained trust material; every field optional."""

    log_vkey: str | None = None
    log_sm2_pem: str | None = None
    witness_policy: str | None = None
    tsa_ca_pem: bytes | None = None
    packet_ca_pem: bytes | None = None

    @classmethod
    def from_dir(cls, path: Path) -> Trust:
        """Read the trust files present in `path` (FormatError if it is not a directory)."""
        p = Path(path)
        if not p.is_dir():
            raise FormatError(f"trust directory {p} does not exist")

        def text(name: str) -> str | None:
            f = p / name
            return f.read_text(encoding="utf-8") if f.is_file() else None

        def raw(name: str) -> bytes | None:
            f = p / name
            return f.read_bytes() if f.is_file() else None

        vkey = text("log.vkey")
        return cls(vkey.strip() if vkey else None, text("log-sm2.pem"), text("witness-policy.txt"),
                   raw("tsa-ca.pem"), raw("packet-ca.pem"))


# --- the proof (shared by packets and bundles) -------------------------------------------------------


Outcome = str | tuple[str, dict[str, Any]]


def _run(name: str, explanation: str, fn: Callable[[], Outcome]) -> Check:
    """Run one check; an EvidenceError (or a parse error) fails it with the error as detail.

    `fn` returns the detail, or (detail, facts) when the check establishes something the summary names.
    """
    try:
        out = fn()
    except (EvidenceError, ValueError, KeyError, TypeError) as e:
        detail = e.diagnostics() if isinstance(e, EvidenceError) else f"{type(e).__name__}: {e}"
        return Check(name, False, detail, explanation)
    if isinstance(out, tuple):
        return Check(name, True, out[0], explanation, facts=out[1])
    return Check(name, True, out, explanation)


def _floor_s(t: datetime) -> int:
    return int(t.timestamp())


def verify_proof(bundle: ProofBundle, *, file: OriginalFile | None = None, trust: Trust | None = None,
                 attachments: dict[str, bytes] | None = None, label: str = "") -> list[Check]:
    """Every check of one deposit's proof; `attachments` (packet files of this deposit) when from a PDF."""
    trust = trust or Trust()
    pre = f"[{label}] " if label else ""
    checks: list[Check] = []
    leaf_holder: list[LeafData] = []

    if attachments is not None:
        checks.append(_run(pre + "attachments", "The files inside the packet must tell one consistent story: "
                           "proof.json, the tlog-proof, the checkpoint and the timestamp token are copies of "
                           "the same proof.", lambda: _attachments(bundle, attachments)))

    def leaf() -> Outcome:
        lf = LeafData.from_bytes(bundle.leaf_data)
        if lf.id != bundle.deposit_id:
            raise FormatError(f"leaf id {lf.id}, want deposit {bundle.deposit_id}")
        if lf.meta != meta_hash(bundle.metadata):
            raise FormatError(f"leaf meta {lf.meta.hex()}, but the metadata in proof.json hashes to "
                              f"{meta_hash(bundle.metadata).hex()} (RFC 8785)")
        leaf_holder.append(lf)
        return (f"evidence-deposit/v1 leaf of {lf.id}, received {lf.received.isoformat()}; metadata matches",
                {"deposit_id": lf.id, "received": lf.received.isoformat(), "sha256": lf.sha256.hex()})

    checks.append(_run(pre + "leaf-data", "The leaf is the record written into the log: file hashes, time, "
                       "depositor and a hash of the metadata. It must parse and match the metadata "
                       "shown.", leaf))

    if file is not None:
        checks.append(_run(pre + "file-hashes", "The file you hold must have the SHA-256 and SM3 recorded in "
                           "the leaf; otherwise it is not the deposited file.", lambda: _file_matches(
                               bundle.leaf_data, file)))
    originals = {n: d for n, d in (attachments or {}).items() if n.startswith(ORIGINAL_PREFIX)}
    for name, data in originals.items():
        checks.append(_run(pre + "original-attachment", "The copy of the original stored in the packet must "
                           "have the hashes recorded in the leaf.",
                           functools.partial(_file_matches, bundle.leaf_data, data, name)))

    def inclusion() -> Outcome:
        cp = SignedCheckpoint.from_text(bundle.checkpoint).checkpoint
        if bundle.tree_size != cp.size:
            raise FormatError(f"tree_size {bundle.tree_size}, but the checkpoint says {cp.size}")
        leaf_hash = SHA256.hash_leaf(bundle.leaf_data)
        verify_inclusion(SHA256, bundle.leaf_index, cp.size, leaf_hash, bundle.inclusion_proof, cp.root_hash)
        return (f"leaf {bundle.leaf_index} is in the tree of size {cp.size} with root {cp.root_hash.hex()[:16]}…",
                {"origin": cp.origin, "tree_size": cp.size})

    checks.append(_run(pre + "inclusion", "The Merkle path from the leaf must lead to the root the log signed: "
                       "this proves the deposit is in the log.", inclusion))
    checks.append(_run(pre + "checkpoint-ed25519", "The log's Ed25519 signature on the checkpoint proves the "
                       "log operator published this tree.", lambda: _log_ed25519(bundle, trust)))
    checks.append(_run(pre + "checkpoint-sm2", "The log's SM2/SM3 signature on the same checkpoint (national "
                       "algorithm) proves the same.", lambda: _log_sm2(bundle, trust)))
    checks.append(_witnesses(bundle, trust, pre))
    checks.append(_token(bundle, trust, pre))
    order_why = ("The timestamp and the witnesses saw the checkpoint after the deposit was received; earlier "
                 "times would be inconsistent.")
    if bundle.timestamp_token is None and not _cosignature_times(bundle):
        checks.append(absent(pre + "time-order", "no timestamp or cosignature times to compare: only the "
                             "depository vouches for the time", order_why))
    else:
        checks.append(_run(pre + "time-order", order_why, lambda: _time_order(bundle)))
    return checks


def _cosignature_times(bundle: ProofBundle) -> list[Any]:
    try:
        signed = SignedCheckpoint.from_text(bundle.checkpoint)
    except EvidenceError:
        return []
    out = []
    for sig in signed.signatures:
        if sig.name == signed.checkpoint.origin:
            continue
        try:
            out.append(parse_cosignature(sig.to_line()))
        except EvidenceError:
            continue
    return out


def _attachments(bundle: ProofBundle, files: dict[str, bytes]) -> str:
    missing = [n for n in (PROOF_JSON, TLOG_PROOF, CHECKPOINT, CHECKPOINT_BODY) if n not in files]
    if missing:
        raise FormatError(f"missing attachment(s): {', '.join(missing)}")
    tlog = TlogProof.from_text(files[TLOG_PROOF])
    cp_text = files[CHECKPOINT].decode("utf-8")
    if cp_text != bundle.checkpoint:
        raise FormatError("checkpoint.txt differs from the checkpoint in proof.json")
    if tlog.checkpoint_text != bundle.checkpoint:
        raise FormatError("the checkpoint in tlog-proof.txt differs from proof.json's")
    if bundle.tlog_proof != files[TLOG_PROOF].decode("utf-8"):
        raise FormatError("tlog-proof.txt differs from proof.json's tlog_proof")
    if tlog.extra != bundle.leaf_data or tlog.index != bundle.leaf_index:
        raise FormatError("tlog-proof.txt's leaf data or index differs from proof.json's")
    if list(tlog.proof) != list(bundle.inclusion_proof):
        raise FormatError("tlog-proof.txt's inclusion proof differs from proof.json's")
    body = SignedCheckpoint.from_text(bundle.checkpoint).body.encode()
    if files[CHECKPOINT_BODY] != body:
        raise FormatError("checkpoint-body.txt is not exactly the signed checkpoint text")
    token = files.get(TIMESTAMP)
    if token != bundle.timestamp_token:
        raise FormatError("timestamp.tsr differs from proof.json's timestamp_token")
    if bundle.timestamp_ca_pem and files.get(TSA_CHAIN, b"").decode() != bundle.timestamp_ca_pem:
        raise FormatError("tsa-chain.pem differs from proof.json's timestamp_ca_pem")
    return f"{len(files)} attachments, all consistent with proof.json"


def _file_matches(leaf_data: bytes, data: OriginalFile, what: str = "the file") -> str:
    lf = LeafData.from_bytes(leaf_data)
    d = data if isinstance(data, FileDigests) else FileDigests.of(data)
    sha, sm3 = d.sha256, d.sm3
    if sha != lf.sha256:
        raise FormatError(f"SHA-256 of {what} is {sha.hex()}, the leaf records {lf.sha256.hex()}")
    if sm3 != lf.sm3:
        raise FormatError(f"SM3 of {what} is {sm3.hex()}, the leaf records {lf.sm3.hex()}")
    if lf.size is not None and lf.size != d.size:
        raise FormatError(f"{what} is {d.size} bytes, the leaf records {lf.size}")
    return f"SHA-256 {sha.hex()[:16]}… and SM3 {sm3.hex()[:16]}… match the leaf"


def _log_ed25519(bundle: ProofBundle, trust: Trust) -> Outcome:
    vkey = trust.log_vkey or bundle.log_vkey
    verify_checkpoint(bundle.checkpoint, [Ed25519Verifier.from_vkey(vkey)])
    return f"verified with {vkey.split('+')[0]}+{vkey.split('+')[1]}" + (
        " (trusted key)" if trust.log_vkey else " (untrusted keys: the copy inside the proof)"), {
        "log": vkey.split("+")[0], "trusted": bool(trust.log_vkey)}


def _log_sm2(bundle: ProofBundle, trust: Trust) -> str:
    origin = SignedCheckpoint.from_text(bundle.checkpoint).checkpoint.origin
    pem = trust.log_sm2_pem or bundle.log_sm2_public_key_pem
    v = SM2Verifier(origin, SM2PublicKey.from_pem(pem))
    verify_checkpoint(bundle.checkpoint, [v])
    return f"verified with SM2 key {v.key_id:08x}" + (
        " (trusted key)" if trust.log_sm2_pem else " (untrusted keys: the copy inside the proof)")


def _witnesses(bundle: ProofBundle, trust: Trust, pre: str) -> Check:
    name = pre + "witness-quorum"
    why = ("Independent witnesses cosign checkpoints they have seen; a quorum of them shows the log showed "
           "everyone the same tree.")
    text = trust.witness_policy or bundle.witness_policy
    if not text:
        return absent(name, NO_WITNESSES + " (no witness policy in the proof or the trust directory)", why)
    policy: Policy | None
    try:
        policy = Policy.from_text(text)
    except FormatError as e:
        return Check(name, False, f"witness policy: {e.diagnostics()}", why)
    try:
        rows, quorum = witness_rows(bundle, policy)
    except EvidenceError as e:
        return Check(name, False, e.diagnostics(), why)
    bad = [r for r in rows if not r.verified and r.note != "no cosignature"]
    ok_names = [r.name for r in rows if r.verified]
    source = "trusted policy" if trust.witness_policy else "untrusted policy from the proof"
    if bad:
        return Check(name, False, "; ".join(f"{r.name}: {r.note}" for r in bad), why)
    if not quorum:
        if not trust.witness_policy and not ok_names and parse_policy(bundle.witness_policy) is None:
            return absent(name, NO_WITNESSES, why)
        detail = f"quorum not met ({source}); verified: {', '.join(ok_names) or 'none'}"
        if trust.witness_policy:  # the verifier requires the quorum: its absence fails
            return Check(name, False, detail + "; the trusted policy requires it", why, facts=MISSING_REQUIRED)
        return absent(name, detail + ": nobody independent of the depository confirms the log showed everyone "
                      "this same tree", why)
    if not ok_names:
        return absent(name, NO_WITNESSES + f" (the {source} requires none)", why)
    return Check(name, True, f"quorum met ({source}); verified: {', '.join(ok_names)}", why,
                 facts={"witnesses": ok_names, "trusted": bool(trust.witness_policy)})


def _token(bundle: ProofBundle, trust: Trust, pre: str) -> Check:
    name = pre + "timestamp-token"
    why = ("An RFC 3161 token from a time-stamping authority proves the checkpoint (and so the deposit) "
           "existed no later than its time.")
    if bundle.timestamp_token is None:
        if trust.tsa_ca_pem:
            return Check(name, False, "no timestamp token, but trust/tsa-ca.pem requires one", why,
                         facts=MISSING_REQUIRED)
        return absent(name, NO_TIMESTAMP, why)

    def run() -> Outcome:
        body = SignedCheckpoint.from_text(bundle.checkpoint).body.encode()
        if trust.tsa_ca_pem:
            cas, note = [trust.tsa_ca_pem], "trusted TSA root"
        elif bundle.timestamp_ca_pem:
            cas, note = [bundle.timestamp_ca_pem.encode()], "untrusted keys: TSA chain from the proof"
        else:
            raise FormatError("no TSA certificate to check the token against")
        info = verify_token(bundle.timestamp_token or b"", hashlib.sha256(body).digest(), "sha256", cas)
        return (f"genTime {info.gen_time.isoformat()} by {info.tsa_name or 'TSA'}, serial {info.serial} ({note})",
                {"gen_time": info.gen_time.isoformat(), "tsa": info.tsa_name or "the TSA",
                 "trusted": bool(trust.tsa_ca_pem)})

    return _run(name, why, run)


def _time_order(bundle: ProofBundle) -> str:
    lf = LeafData.from_bytes(bundle.leaf_data)
    floor = _floor_s(lf.received)
    seen = []
    if bundle.timestamp_token is not None:
        gen = parse_token(bundle.timestamp_token).gen_time
        if _floor_s(gen) < floor:
            raise FormatError(f"token genTime {gen.isoformat()} is before received {lf.received.isoformat()}")
        seen.append("genTime")
    signed = SignedCheckpoint.from_text(bundle.checkpoint)
    for sig in signed.signatures:
        if sig.name == signed.checkpoint.origin:  # the log's own signatures carry no time
            continue
        try:
            c = parse_cosignature(sig.to_line())
        except EvidenceError:
            continue
        if c.timestamp < floor:
            when = datetime.fromtimestamp(c.timestamp, UTC).isoformat()
            raise FormatError(f"cosignature by {c.name} at {when} is before received {lf.received.isoformat()}")
        seen.append(c.name)
    return (f"{', '.join(seen)} not earlier than received {lf.received.isoformat()}" if seen
            else "no timestamp or cosignature times to compare")


# --- bundles -----------------------------------------------------------------------------------------


def verify_bundle(data: bytes | dict[str, Any], *, file: OriginalFile | None = None,
                  trust: Trust | None = None) -> list[Check]:
    """Checks of a proof bundle (proof.json). FormatError if it is not a bundle at all."""
    if isinstance(data, bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError(f"not a proof bundle: {e}") from e
    return verify_proof(ProofBundle.from_json(data), file=file, trust=trust)


# --- packets ----------------------------------------------------------------------------------------


def verify_packet(pdf: bytes, *, file: OriginalFile | None = None, trust: Trust | None = None) -> list[Check]:
    """Every check of an evidence packet; FormatError (one line) if it is not a readable packet PDF."""
    return outside_event_loop(_verify_packet, pdf, file=file, trust=trust)


def _verify_packet(pdf: bytes, *, file: OriginalFile | None = None, trust: Trust | None = None) -> list[Check]:
    from evidence.pdfsig import read_signed_packet

    trust = trust or Trust()
    packet = read_signed_packet(pdf, trust.packet_ca_pem, trust.tsa_ca_pem)
    checks = list(packet.checks)
    if packet.altered:  # nothing is read from a file whose signed bytes changed
        return checks
    sections = sorted(n[: -len(PROOF_JSON)] for n in packet.files if n.endswith(PROOF_JSON))
    if not sections:
        raise FormatError("not an evidence packet: no proof.json attachment in the signed revision")
    matter = len(sections) > 1
    file_matched: list[str] = []
    for prefix in sections:
        files = {n[len(prefix):]: d for n, d in packet.files.items()
                 if n.startswith(prefix) and (prefix or not _has_section_prefix(n, sections))}
        label = prefix.rstrip(".") if matter else ""
        try:
            bundle = ProofBundle.from_json(json.loads(files[PROOF_JSON]))
        except (ValueError, UnicodeDecodeError, EvidenceError) as e:
            msg = e.diagnostics() if isinstance(e, EvidenceError) else str(e)
            checks.append(Check((f"[{label}] " if label else "") + "attachments", False,
                                f"proof.json unreadable: {msg}", "proof.json must be a proof bundle."))
            continue
        file_for_this = file if not matter else None
        checks += verify_proof(bundle, file=file_for_this, trust=trust, attachments=files, label=label)
        if matter and file is not None:
            try:
                _file_matches(bundle.leaf_data, file)
                file_matched.append(bundle.deposit_id)
            except EvidenceError:
                pass
    if matter and file is not None:
        checks.append(Check("file-hashes", bool(file_matched),
                            f"the file matches deposit {', '.join(file_matched)}" if file_matched
                            else "the file matches no deposit in this matter packet",
                            "The file you hold must have the hashes recorded in one of the leaves."))
    originals = {n: d for n, d in packet.files.items() if ORIGINAL_PREFIX in n}
    for name, ok, detail in capture_checks(originals):
        checks.append(Check("capture-manifest", ok, f"{name}: {detail}",
                            "A web capture's signed manifest must verify, and every artefact it lists must be "
                            "attached with the listed SHA-256, SM3 and size."))
    if SIGNER_CHAIN not in packet.files:
        checks.append(Check("signer-chain", False, "signer-chain.pem attachment missing",
                            "The packet carries its signer's certificate chain."))
    return checks


def _has_section_prefix(name: str, sections: list[str]) -> bool:
    return any(s and name.startswith(s) for s in sections)


def read_any(data: bytes) -> str:
    """'pdf' or 'json': what the CLI was given (FormatError for anything else, or a truncated PDF)."""
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"{"):
        return "json"
    raise FormatError("not a PDF evidence packet or a proof bundle (no %PDF- header, not JSON)")
