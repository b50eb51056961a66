"""Checkpoints: the spec example, strict parsing, signing with Ed25519 + SM2, cosignature lines."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    append_signature_lines,
    split_signed_note,
    verify_checkpoint,
)
from evidence.errors import FormatError, SignatureError
from evidence.note import Ed25519Signer, SM2Signer, generate_ed25519, sign_note
from evidence.sm2 import SM2PrivateKey

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_round_trip() -> None:
    cp = Checkpoint.from_text(SPEC_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_text() == SPEC_BODY


def test_extensions_round_trip() -> None:
    cp = Checkpoint("o", 0, bytes(32), ("ext one", "ext two"))
    assert cp.to_text() == f"o\n0\n{base64.b64encode(bytes(32)).decode()}\next one\next two\n"
    assert Checkpoint.from_text(cp.to_text()) == cp


ROOT = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "bad",
    [
        f"\n1\n{ROOT}\n",  # empty origin
        f"o\n01\n{ROOT}\n",  # leading zero
        f"o\n-1\n{ROOT}\n",
        f"o\n+1\n{ROOT}\n",
        f"o\n 1\n{ROOT}\n",
        f"o\n18446744073709551616\n{ROOT}\n",  # 2^64
        f"o\n1\n{ROOT}",  # no final newline
        f"o\n1\n{ROOT}\n\n",  # empty extension line
        f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n",  # 31-byte root
        "o\n1\nnot base64!\n",
        "o\n1\n",
        f"o\n1\n{ROOT}\nbad\textension\n",
    ],
)
def test_strict_parse(bad: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.from_text(bad)


def test_constructor_validates() -> None:
    with pytest.raises(FormatError):
        Checkpoint("", 1, bytes(32))
    with pytest.raises(FormatError):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(FormatError):
        Checkpoint("o", 1, bytes(33))
    with pytest.raises(FormatError):
        Checkpoint("o", 1, bytes(32), ("",))


def _log_signers(origin: str) -> tuple[Ed25519Signer, SM2Signer]:
    ed = Ed25519Signer.from_skey(generate_ed25519(origin)[0])
    return ed, SM2Signer(origin, SM2PrivateKey.generate())


def test_sign_with_both_log_keys_and_verify_each() -> None:
    origin = "log.example/evidence"
    ed, sm = _log_signers(origin)
    cp = Checkpoint(origin, 5, hashlib.sha256(b"root").digest())
    signed = SignedCheckpoint.sign(cp, [ed, sm])
    text = signed.to_text()
    again = SignedCheckpoint.from_text(text)
    assert again == signed and again.to_text() == text
    assert again.body == cp.to_text()
    assert len(again.signature_lines()) == 2
    assert verify_checkpoint(text, [ed.verifier()]).checkpoint == cp
    assert verify_checkpoint(text, [sm.verifier()]).checkpoint == cp
    body, lines = split_signed_note(text)
    assert body == cp.to_text() and "".join(lines) == text[len(body) + 1 :]


def test_origin_must_match_log_key_name() -> None:
    other = Ed25519Signer.from_skey(generate_ed25519("not-the-origin")[0])
    cp = Checkpoint("log.example/evidence", 1, bytes(32))
    text = sign_note(cp.to_text(), [other])
    with pytest.raises(SignatureError, match="origin"):
        verify_checkpoint(text, [other.verifier()])


def test_append_cosignature_lines_is_idempotent() -> None:
    origin = "log.example/evidence"
    ed, _ = _log_signers(origin)
    witness = Ed25519Signer.from_skey(generate_ed25519("witness.example")[0])
    signed = SignedCheckpoint.sign(Checkpoint(origin, 3, bytes(32)), [ed])
    wline = SignedCheckpoint.sign(signed.checkpoint, [witness]).signature_lines()[0]
    once = append_signature_lines(signed.to_text(), [wline])
    assert once == signed.to_text() + wline
    assert append_signature_lines(once, [wline]) == once
    assert signed.with_signature_lines([wline]).to_text() == once
    assert verify_checkpoint(once, [ed.verifier()]).note.unverified[0].name == "witness.example"


def test_tampered_checkpoint_fails() -> None:
    origin = "log.example/evidence"
    ed, sm = _log_signers(origin)
    text = SignedCheckpoint.sign(Checkpoint(origin, 7, bytes(32)), [ed, sm]).to_text()
    tampered = text.replace("\n7\n", "\n8\n", 1)
    for v in (ed.verifier(), sm.verifier()):
        with pytest.raises(SignatureError, match="does not verify"):
            verify_checkpoint(tampered, [v])


@given(
    origin=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)),
)
def test_round_trip_property(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp
