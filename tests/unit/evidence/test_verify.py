"""The offline verifier on proof bundles: all checks pass on a real proof; altering one thing fails its check."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest

from evidence.checkpoint import SignedCheckpoint
from evidence.errors import FormatError
from evidence.summary import summarize
from evidence.verify import Trust, all_passed, none_failed, read_any, verify_bundle, verify_proof
from tests.unit.evidence.test_packet_support import CONTENT, make_proof


@pytest.fixture(scope="module")
def proof():  # type: ignore[no-untyped-def]
    return make_proof()


def failed(checks: list) -> set[str]:  # type: ignore[type-arg]
    return {c.name for c in checks if c.status == "failed"}


def test_real_proof_passes_with_trust_and_file(proof) -> None:  # type: ignore[no-untyped-def]
    checks = verify_proof(proof.bundle, file=CONTENT, trust=proof.trust)
    assert all_passed(checks), [c for c in checks if not c.ok]
    by = {c.name: c for c in checks}
    assert "trusted" in by["checkpoint-ed25519"].detail
    assert "quorum met" in by["witness-quorum"].detail
    assert by["timestamp-token"].status == "verified"
    assert "genTime" in by["time-order"].detail and "court.witness.test" in by["time-order"].detail


def test_without_trust_says_untrusted_keys(proof) -> None:  # type: ignore[no-untyped-def]
    checks = verify_proof(proof.bundle)
    assert all_passed(checks)
    assert "untrusted keys" in {c.name: c for c in checks}["checkpoint-sm2"].detail


def test_bundle_json_round_trip_verifies(proof) -> None:  # type: ignore[no-untyped-def]
    data = json.dumps(proof.bundle.to_json()).encode()
    assert read_any(data) == "json"
    assert all_passed(verify_bundle(data, file=CONTENT, trust=proof.trust))


def test_one_byte_of_the_file(proof) -> None:  # type: ignore[no-untyped-def]
    bad = bytearray(CONTENT)
    bad[10] ^= 1
    assert failed(verify_proof(proof.bundle, file=bytes(bad), trust=proof.trust)) == {"file-hashes"}


def test_a_proof_hash(proof) -> None:  # type: ignore[no-untyped-def]
    obj = proof.bundle.to_json()
    h = bytearray(base64.b64decode(obj["inclusion_proof"][1]))
    h[0] ^= 0xFF
    obj["inclusion_proof"][1] = base64.b64encode(bytes(h)).decode()
    assert failed(verify_bundle(obj, trust=proof.trust)) == {"inclusion"}


def test_the_checkpoint_size(proof) -> None:  # type: ignore[no-untyped-def]
    lines = proof.bundle.checkpoint.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    b = dataclasses.replace(proof.bundle, checkpoint="\n".join(lines), tree_size=int(lines[1]))
    bad = failed(verify_proof(b, trust=proof.trust))
    assert {"checkpoint-ed25519", "checkpoint-sm2", "timestamp-token"} <= bad


def test_a_cosignature(proof) -> None:  # type: ignore[no-untyped-def]
    signed = SignedCheckpoint.from_text(proof.bundle.checkpoint)
    lines = signed.signature_lines()
    cos = next(i for i, line in enumerate(lines) if line.startswith("— court.witness.test "))
    name, b64 = lines[cos].rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    lines[cos] = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
    note = signed.body + "\n" + "".join(lines)
    b = dataclasses.replace(proof.bundle, checkpoint=note)
    bad = failed(verify_proof(b, trust=proof.trust))
    assert bad == {"witness-quorum"}


def test_the_token(proof) -> None:  # type: ignore[no-untyped-def]
    token = bytearray(proof.bundle.timestamp_token)
    token[-5] ^= 1
    b = dataclasses.replace(proof.bundle, timestamp_token=bytes(token))
    assert "timestamp-token" in failed(verify_proof(b, trust=proof.trust))


def test_the_metadata(proof) -> None:  # type: ignore[no-untyped-def]
    b = dataclasses.replace(proof.bundle, metadata={**proof.bundle.metadata, "title": "forged"})
    assert failed(verify_proof(b, trust=proof.trust)) == {"leaf-data"}


def test_untrusted_log_key_fails(proof) -> None:  # type: ignore[no-untyped-def]
    other = make_proof(with_witnesses=False, with_token=False)
    trust = dataclasses.replace(proof.trust, log_vkey=other.trust.log_vkey, log_sm2_pem=other.trust.log_sm2_pem)
    assert {"checkpoint-ed25519", "checkpoint-sm2"} <= failed(verify_proof(proof.bundle, trust=trust))


def test_no_witnesses_or_tsa_is_not_present_unless_trust_requires() -> None:
    bare = make_proof(with_witnesses=False, with_token=False)
    checks = verify_proof(bare.bundle, file=CONTENT, trust=bare.trust)
    assert not all_passed(checks) and none_failed(checks)
    status = {c.name: c.status for c in checks}
    assert status["witness-quorum"] == "not present" and status["timestamp-token"] == "not present"
    assert status["time-order"] == "not present"
    assert not any(c.ok for c in checks if c.status == "not present")  # absent is never a pass
    s = summarize(checks, file_given=True)
    assert s.verdict == "partial"
    assert "existed no later" not in s.headline and "witness" not in s.headline
    assert "only the depository vouches for the time" in " ".join(s.missing)
    full = make_proof()
    strict = Trust(log_vkey=bare.trust.log_vkey, log_sm2_pem=bare.trust.log_sm2_pem,
                   witness_policy=full.trust.witness_policy, tsa_ca_pem=full.trust.tsa_ca_pem)
    assert {"witness-quorum", "timestamp-token"} <= failed(verify_proof(bare.bundle, trust=strict))


def test_trust_dir_round_trip(proof, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = Trust.from_dir(proof.write_trust(tmp_path / "trust"))
    assert all_passed(verify_proof(proof.bundle, trust=t))
    with pytest.raises(FormatError):
        Trust.from_dir(tmp_path / "missing")


def test_not_a_bundle_is_one_format_error() -> None:
    with pytest.raises(FormatError):
        read_any(b"\x89PNG\r\n")
    with pytest.raises(FormatError):
        verify_bundle(b'{"format": "something-else"}')
