"""tlog-policy: the spec's two-level example, strict errors with line numbers, quorum evaluation."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.checkpoint import Checkpoint, SignedCheckpoint
from evidence.cosignature import (
    CosignatureSigner,
    SM2CosignatureSigner,
    generate_sm2_witness_key,
    generate_witness_key,
)
from evidence.errors import FormatError, SignatureError
from evidence.note import Ed25519Signer, SM2Signer, generate_ed25519, generate_sm2
from evidence.policy import Policy, verify_checkpoint_with_policy
from evidence.sm2 import SM2PrivateKey


def _wkey(name: str) -> str:
    return generate_witness_key(name)[1]


def _spec_example() -> str:
    log = generate_ed25519("log.example")[1]
    w = {n: _wkey(f"{n.lower()}.example") for n in ("X1", "X2", "X3", "Y1", "Y2", "Y3")}
    return f"""# example from the spec
log {log}

witness X1 {w["X1"]}
witness X2 {w["X2"]} https://x2.example/
witness X3 {w["X3"]}
group X-witnesses 2 X1 X2 X3

\twitness Y1   {w["Y1"]}\t
witness Y2 {w["Y2"]}
witness Y3 {w["Y3"]}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_spec_example_quorum() -> None:
    p = Policy.from_text(_spec_example())
    assert len(p.logs) == 1 and len(p.witnesses) == 6 and len(p.groups) == 3
    assert p.quorum == "X-and-Y"
    assert p.witnesses[1].url == "https://x2.example/"
    assert p.satisfied({"X1", "X3", "Y2"})
    assert not p.satisfied({"X1", "Y1", "Y2", "Y3"})
    assert not p.satisfied({"X1", "X2", "X3"})
    assert not p.satisfied(set())


def test_round_trip() -> None:
    p = Policy.from_text(_spec_example())
    text = p.to_text()
    assert Policy.from_text(text) == p
    assert Policy.from_text(text).to_text() == text
    assert "#" not in text and text.endswith("quorum X-and-Y\n")


def test_quorum_none_and_single_witness() -> None:
    assert Policy.from_text("quorum none\n").satisfied([])
    p = Policy.from_text(f"witness W {_wkey('w')}\nquorum W\n")
    assert p.satisfied(["W"]) and not p.satisfied([])


def test_sm2_keys_allowed() -> None:
    text = f"log {generate_sm2('log.example')[1]}\nwitness S {generate_sm2_witness_key('s')[1]}\nquorum S\n"
    p = Policy.from_text(text)
    assert p.to_text() == text


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("quorum none\nquorum none\n", 2, "second quorum"),
        ("quorum W\n", 1, "not a witness or group"),
        ("group G any W\nquorum none\n", 1, "not a witness or group"),
        ("frobnicate\nquorum none\n", 1, "unknown keyword"),
        ("log\nquorum none\n", 1, "want: log"),
        ("log not-a-key\nquorum none\n", 1, "log key"),
        ("quorum none\nwitness none {w}\n", 2, "reserved"),
        ("witness A {w}\nwitness A {w2}\nquorum A\n", 2, "already defined"),
        ("witness A {w}\nwitness B {w}\nquorum A\n", 2, "duplicate witness"),
        ("witness A {w}\ngroup G 2 A\nquorum G\n", 2, "threshold"),
        ("witness A {w}\ngroup G 0 A\nquorum G\n", 2, "threshold"),
        ("witness A {w}\ngroup G 01 A\nquorum G\n", 2, "threshold"),
        ("witness A {w}\ngroup G any A A\nquorum G\n", 2, "twice"),
        ("witness A {w}\ngroup G any none\nquorum G\n", 2, "not a witness or group"),
        ("witness A {log}\nquorum A\n", 1, "witness key"),
        ("log {w}\nquorum none\n", 1, "log key"),
        ("log {log}\nlog {log}\nquorum none\n", 2, "duplicate log"),
        ("# c\n\nquorum none\x0b\n", 3, "control character"),
    ],
)
def test_errors_name_the_line(text: str, line: int, why: str) -> None:
    filled = text.format(w=_wkey("a"), w2=_wkey("b"), log=generate_ed25519("log.example")[1])
    with pytest.raises(FormatError, match=f"line {line}: .*{why}"):
        Policy.from_text(filled)


def test_missing_quorum_and_final_newline() -> None:
    with pytest.raises(FormatError, match="no quorum"):
        Policy.from_text("# nothing\n")
    with pytest.raises(FormatError, match="line 1: missing final newline"):
        Policy.from_text("quorum none")


def test_verify_checkpoint_with_policy() -> None:
    origin = "log.example/evidence"
    log = Ed25519Signer.from_skey(generate_ed25519(origin)[0])
    log_sm2 = SM2Signer(origin, SM2PrivateKey.generate())
    w1 = CosignatureSigner("w1.example", Ed25519PrivateKey.generate())
    w2 = CosignatureSigner("w2.example", Ed25519PrivateKey.generate())
    w3 = SM2CosignatureSigner("w3.example", SM2PrivateKey.generate())
    policy = Policy.from_text(
        f"log {log.verifier().to_vkey()}\n"
        f"witness A {w1.verifier().to_vkey()}\n"
        f"witness B {w2.verifier().to_vkey()}\n"
        f"witness C {w3.verifier().to_vkey()}\n"
        "group two 2 A B C\nquorum two\n"
    )
    assert [type(v).__name__ for v in policy.witness_verifiers()] == [
        "CosignatureVerifier",
        "CosignatureVerifier",
        "SM2CosignatureVerifier",
    ]
    signed = SignedCheckpoint.sign(Checkpoint(origin, 4, hashlib.sha256(b"x").digest()), [log, log_sm2])
    one = signed.with_signature_lines([w1.cosign(signed.body, 10)])
    with pytest.raises(SignatureError, match=r"quorum 'two' not met.*A"):
        verify_checkpoint_with_policy(one.to_text(), policy)
    two = one.with_signature_lines([w3.cosign(signed.body, 11)])
    result = verify_checkpoint_with_policy(two.to_text(), policy)
    assert result.checkpoint == signed.checkpoint
    assert policy.witness_names_for(result.note.verifiers) == {"A", "C"}
    with pytest.raises(SignatureError):
        verify_checkpoint_with_policy(two.to_text(), Policy.from_text("quorum none\n"))
