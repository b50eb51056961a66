"""Witness cosignatures: the spec example line, Ed25519 and SM2 profiles, keys, verify semantics."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.checkpoint import Checkpoint, SignedCheckpoint, verify_checkpoint
from evidence.cosignature import (
    ALG_COSIGNATURE_V1,
    ALG_SM2_COSIGNATURE_V1,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    SM2CosignatureSigner,
    SM2CosignatureVerifier,
    cosignature_message,
    generate_sm2_witness_key,
    generate_witness_key,
    parse_cosignature,
    parse_witness_key,
    parse_witness_signer,
    verify_cosignature,
)
from evidence.errors import FormatError, SignatureError
from evidence.note import Ed25519Signer, compute_key_id, generate_ed25519, verify_note
from evidence.sm2 import SM2PrivateKey

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_spec_example_line_parses_with_its_timestamp() -> None:
    cosig = parse_cosignature(SPEC_LINE)
    assert cosig.name == "witness.example.com/w1"
    assert cosig.timestamp == 1679315147  # the `time` line of the spec's signed-message example
    assert len(cosig.signature) == 64
    assert cosig.to_line() == SPEC_LINE


def test_signed_message_matches_spec_example() -> None:
    assert cosignature_message(SPEC_BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + SPEC_BODY.encode()
    )
    with pytest.raises(FormatError):
        cosignature_message(SPEC_BODY, 2**63)


def test_ed25519_cosign_verify_and_layout() -> None:
    signer = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
    pub = signer.public_bytes()
    assert signer.key_id == compute_key_id("witness.example/w1", b"\x04" + pub)
    line = signer.cosign(SPEC_BODY, 1700000000)
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == signer.key_id.to_bytes(4, "big")
    assert int.from_bytes(raw[4:12], "big") == 1700000000
    # The signature is plain Ed25519 over the spec's message.
    signer.private_key.public_key().verify(raw[12:], cosignature_message(SPEC_BODY, 1700000000))
    assert verify_cosignature(SPEC_BODY, line, signer.verifier()) == 1700000000
    with pytest.raises(SignatureError, match="does not verify"):
        verify_cosignature(SPEC_BODY.replace("2085", "2086"), line, signer.verifier())
    other = CosignatureSigner("witness.example/w2", Ed25519PrivateKey.generate()).verifier()
    with pytest.raises(SignatureError, match=r"not witness\.example/w2"):
        verify_cosignature(SPEC_BODY, line, other)


def test_changed_timestamp_breaks_signature() -> None:
    signer = CosignatureSigner("w", Ed25519PrivateKey.generate())
    cosig = parse_cosignature(signer.cosign(SPEC_BODY, 100))
    forged = Cosignature(cosig.name, cosig.key_id, 101, cosig.signature).to_line()
    with pytest.raises(SignatureError):
        verify_cosignature(SPEC_BODY, forged, signer.verifier())


def test_sm2_profile() -> None:
    signer = SM2CosignatureSigner("witness.example/sm2", SM2PrivateKey.generate())
    point = signer.private_key.public_key().point()
    assert signer.key_id == compute_key_id("witness.example/sm2", b"\xffSM2-SM3-cosignature/v1" + point)
    line = signer.cosign(SPEC_BODY, 1700000001)
    cosig = parse_cosignature(line)
    assert cosig.timestamp == 1700000001 and cosig.signature[0] == 0x30  # DER SEQUENCE
    signer.private_key.public_key().verify(cosignature_message(SPEC_BODY, 1700000001), cosig.signature)
    assert verify_cosignature(SPEC_BODY, line, signer.verifier()) == 1700000001
    with pytest.raises(SignatureError):
        verify_cosignature(SPEC_BODY + "ext\n", line, signer.verifier())


def test_witness_keys_text_round_trip() -> None:
    for gen, vtype, stype in (
        (generate_witness_key, CosignatureVerifier, CosignatureSigner),
        (generate_sm2_witness_key, SM2CosignatureVerifier, SM2CosignatureSigner),
    ):
        skey, vkey = gen("witness.example/k")
        v, s = parse_witness_key(vkey), parse_witness_signer(skey)
        assert isinstance(v, vtype) and isinstance(s, stype)
        assert v.to_vkey() == vkey and s.to_skey() == skey
        assert s.verifier() == v
    _, vkey = generate_witness_key("w")
    assert base64.b64decode(vkey.split("+", 2)[2])[:1] == ALG_COSIGNATURE_V1
    _, vkey = generate_sm2_witness_key("w")
    assert base64.b64decode(vkey.split("+", 2)[2]).startswith(ALG_SM2_COSIGNATURE_V1)


def test_log_key_is_not_a_witness_key() -> None:
    _, log_vkey = generate_ed25519("log.example")
    with pytest.raises(FormatError):
        parse_witness_key(log_vkey)
    with pytest.raises(FormatError):
        CosignatureVerifier.from_vkey(log_vkey)


def test_cosigned_checkpoint_verifies_in_one_note_call() -> None:
    origin = "log.example/evidence"
    log = Ed25519Signer.from_skey(generate_ed25519(origin)[0])
    w1 = CosignatureSigner("w1.example", Ed25519PrivateKey.generate(), clock=lambda: 1700000100)
    w2 = SM2CosignatureSigner("w2.example", SM2PrivateKey.generate(), clock=lambda: 1700000200)
    cp = Checkpoint(origin, 9, hashlib.sha256(b"r").digest())
    signed = SignedCheckpoint.sign(cp, [log])
    cosigned = signed.with_signature_lines([w1.cosign(signed.body, 1700000100), w2.cosign(signed.body, 5)])
    text = cosigned.to_text()
    result = verify_note(text, [log.verifier(), w1.verifier(), w2.verifier()])
    assert result.verified_names == {origin, "w1.example", "w2.example"}
    assert verify_checkpoint(text, [log.verifier()]).checkpoint == cp
    # The Signer protocol path (sign via clock) produces the same kind of line.
    via_protocol = SignedCheckpoint.sign(cp, [log, w1])
    assert parse_cosignature(via_protocol.signature_lines()[1]).timestamp == 1700000100


def test_short_or_malformed_lines() -> None:
    with pytest.raises(FormatError):
        parse_cosignature("— w AAAAAAAAAAAA\n")  # 9 bytes: key ID + 5 bytes, too short for a timestamp
    big = (1).to_bytes(4, "big") + (2**63).to_bytes(8, "big") + bytes(64)
    with pytest.raises(FormatError):
        parse_cosignature(f"— w {base64.b64encode(big).decode()}\n")
