"""Signed notes: the sumdb/note vector, key text forms, parsing rules, verification semantics."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence.errors import FormatError, SignatureError
from evidence.note import (
    ALG_ED25519,
    ALG_SM2_SM3,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    NoteSignature,
    SM2Signer,
    SM2Verifier,
    add_signatures,
    compute_key_id,
    format_vkey,
    generate_ed25519,
    generate_sm2,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    verify_note,
)
from evidence.sm2 import SM2PrivateKey
from tests.conftest import TESTDATA

VECTORS = json.loads((TESTDATA / "signed-note-vectors.json").read_text())
VEC = VECTORS["vectors"][0]


def test_vector_verifies_and_resigns_byte_for_byte() -> None:
    signer = Ed25519Signer.from_skey(VEC["signer_key"])
    verifier = Ed25519Verifier.from_vkey(VEC["verifier_key"])
    assert signer.verifier() == verifier
    assert signer.to_skey() == VEC["signer_key"]
    assert verifier.to_vkey() == VEC["verifier_key"]
    assert f"{verifier.key_id:08x}" == "c74f20a3"
    assert sign_note(VEC["text"], [signer]) == VEC["note"]
    verified = verify_note(VEC["note"], [verifier])
    assert verified.text == VEC["text"]
    assert verified.verified_by(verifier)
    assert verified.verified_names == {"PeterNeumann"}


def test_vector_note_round_trips() -> None:
    note = Note.from_text(VEC["note"])
    assert note.text == VEC["text"]
    assert len(note.signatures) == 1
    assert note.to_text() == VEC["note"]
    assert Note.from_text(VEC["note"].encode()) == note


@pytest.mark.parametrize("bad", VECTORS["bad_verifier_keys"])
def test_bad_verifier_keys_rejected(bad: str) -> None:
    with pytest.raises(FormatError):
        parse_verifier_key(bad)
    with pytest.raises(FormatError):
        Ed25519Verifier.from_vkey(bad)


def test_trailing_junk_with_a_matching_hash_is_rejected() -> None:
    """A canonical-base64 key that is too long, whose key ID is computed over the long key."""
    key = base64.b64decode(VEC["verifier_key"].split("+", 2)[2]) + b"junk"
    vkey = format_vkey("PeterNeumann", key)
    with pytest.raises(FormatError, match="Ed25519"):
        parse_verifier_key(vkey)


def test_bad_signer_keys_rejected() -> None:
    good = VEC["signer_key"]
    for bad in (
        good.replace("c74f20a3", "c74f20a4"),
        good.replace("c74f20a3", "C74F20A3"),
        good.replace("PeterNeumann", "Peter Neumann"),
        good[len("PRIVATE+KEY+") :],
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        good + "AA",
    ):
        with pytest.raises(FormatError):
            parse_signer_key(bad)


def test_generated_keys_round_trip() -> None:
    skey, vkey = generate_ed25519("example.com/log")
    signer, verifier = parse_signer_key(skey), parse_verifier_key(vkey)
    assert isinstance(signer, Ed25519Signer) and isinstance(verifier, Ed25519Verifier)
    assert signer.to_skey() == skey and verifier.to_vkey() == vkey
    note = sign_note("hello\n", [signer])
    assert verify_note(note, [verifier]).verified_by(verifier)


def test_sm2_key_id_and_vkey_form() -> None:
    key = SM2PrivateKey.generate()
    signer = SM2Signer("example.com/log", key)
    point = key.public_key().point()
    assert signer.key_id == compute_key_id("example.com/log", b"\xffSM2-SM3" + point)
    vkey = signer.verifier().to_vkey()
    name, hex8, b64 = vkey.split("+", 2)
    assert (name, hex8) == ("example.com/log", f"{signer.key_id:08x}")
    assert base64.b64decode(b64) == ALG_SM2_SM3 + point
    assert SM2Verifier.from_vkey(vkey) == signer.verifier()
    assert parse_verifier_key(vkey) == signer.verifier()
    skey, vkey2 = generate_sm2("x.example/log")
    s2 = parse_signer_key(skey)
    assert isinstance(s2, SM2Signer) and s2.to_skey() == skey and s2.verifier().to_vkey() == vkey2


def test_ed25519_and_sm2_on_one_note_each_verifier_alone() -> None:
    ed = Ed25519Signer.from_skey(generate_ed25519("example.com/log")[0])
    sm = SM2Signer("example.com/log", SM2PrivateKey.generate())
    note = sign_note("example.com/log\n1\nroot\n", [ed, sm])
    parsed = Note.from_text(note)
    assert [s.name for s in parsed.signatures] == ["example.com/log"] * 2
    only_sm2 = verify_note(note, [sm.verifier()])
    assert only_sm2.verified_by(sm.verifier()) and len(only_sm2.unverified) == 1
    only_ed = verify_note(note, [ed.verifier()])
    assert only_ed.verified_by(ed.verifier()) and not only_ed.verified_by(sm.verifier())
    both = verify_note(note, [ed.verifier(), sm.verifier()])
    assert len(both.verified) == 2


def test_unknown_lines_kept_and_ignored() -> None:
    signer = Ed25519Signer.from_skey(VEC["signer_key"])
    other = Ed25519Signer.from_skey(generate_ed25519("other.example")[0])
    note = add_signatures(VEC["note"], [other])
    assert note.startswith(VEC["note"])
    verified = verify_note(note, [signer.verifier()])
    assert [s.name for s in verified.unverified] == ["other.example"]
    assert Note.from_text(note).to_text() == note


def test_no_known_signature_names_keys() -> None:
    other = Ed25519Verifier.from_vkey(generate_ed25519("other.example")[1])
    with pytest.raises(SignatureError, match=r"other\.example\+[0-9a-f]{8}"):
        verify_note(VEC["note"], [other])
    with pytest.raises(SignatureError):
        verify_note(VEC["note"], [])


def test_bad_signature_from_known_key_rejects_note() -> None:
    verifier = Ed25519Verifier.from_vkey(VEC["verifier_key"])
    tampered = VEC["note"].replace("cryptography", "Cryptography")
    with pytest.raises(SignatureError, match=r"PeterNeumann\+c74f20a3 does not verify"):
        verify_note(tampered, [verifier])
    # A same-name key with another ID is an unknown key and is ignored, not a failure.
    stranger = Ed25519Verifier.from_vkey(generate_ed25519("PeterNeumann")[1])
    with pytest.raises(SignatureError, match="no signature by a known key"):
        verify_note(VEC["note"], [stranger])


def test_blank_lines_in_text_split_at_last() -> None:
    signer = Ed25519Signer.from_skey(VEC["signer_key"])
    text = "para one\n\npara two\n"
    note = sign_note(text, [signer])
    assert Note.from_text(note).text == text
    assert verify_note(note, [signer.verifier()]).text == text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no newline",
        "text\n",  # no blank line, no signatures
        "text\n\n",  # blank line but no signatures
        "text\n\n— name AAAAAAA=",  # no final newline
        "text\n\n- name AAAAAAA=\n",  # hyphen, not em dash
        "text\n\n— name\n",  # no signature
        "text\n\n— na+me AAAAAAA=\n",  # '+' in name
        "text\n\n— name AAAA\n",  # too short: key ID only
        "text\n\n— name !!!!\n",  # bad base64
        "text\n\n— name AAAAAAB=\n",  # non-canonical base64
        "te\txt\n\n— name AAAAAAA=\n",  # control character
        "text\r\n\n— name AAAAAAA=\n",
        "text\n\n— name AAAAAAA=\n\n",
    ],
)
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(FormatError):
        Note.from_text(bad)


def test_limits() -> None:
    line = NoteSignature("n", 1, b"x").to_line()
    Note.from_text("t\n\n" + line * 100)
    with pytest.raises(FormatError, match="more than"):
        Note.from_text("t\n\n" + line * 101)
    with pytest.raises(FormatError, match="longer"):
        Note.from_text("a" * 1_000_001 + "\n\n" + line)
    with pytest.raises(FormatError):
        Note.from_text(b"\xff\n\n" + line.encode())


def test_sign_note_rejects_bad_text() -> None:
    signer = Ed25519Signer.from_skey(VEC["signer_key"])
    for bad in ("", "no newline", "ctl\x07\n"):
        with pytest.raises(FormatError):
            sign_note(bad, [signer])
    with pytest.raises(FormatError):
        sign_note("ok\n", [])


def test_duplicate_verifiers_rejected() -> None:
    v1 = Ed25519Verifier.from_vkey(VEC["verifier_key"])
    v2 = Ed25519Verifier.from_vkey(VEC["verifier_key"])
    with pytest.raises(FormatError, match="share"):
        verify_note(VEC["note"], [v1, v2])


def test_type_byte_constants() -> None:
    assert ALG_ED25519 == b"\x01"
    assert ALG_SM2_SM3 == b"\xff" + b"SM2-SM3"


_text_line = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_categories=("Cs",)), max_size=30
)
_name = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"),
    min_size=1,
    max_size=20,
)


@given(
    lines=st.lists(_text_line, min_size=1, max_size=6),
    sigs=st.lists(
        st.builds(NoteSignature, _name, st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=80)),
        min_size=1,
        max_size=5,
    ),
)
def test_note_round_trip_property(lines: list[str], sigs: list[NoteSignature]) -> None:
    note = Note("\n".join(lines) + "\n", tuple(sigs))
    text = note.to_text()
    assert Note.from_text(text) == note
    assert Note.from_text(text).to_text() == text
