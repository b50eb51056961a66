"""tlog-proof@v1: round trips on real signed checkpoints, and strict parsing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.checkpoint import Checkpoint, SignedCheckpoint
from evidence.cosignature import CosignatureSigner
from evidence.errors import FormatError
from evidence.note import Ed25519Signer, generate_ed25519
from evidence.tlogproof import TlogProof

ORIGIN = "log.example/evidence"
LOG = Ed25519Signer.from_skey(generate_ed25519(ORIGIN)[0])
WITNESS = CosignatureSigner("w.example", Ed25519PrivateKey.generate())


def _checkpoint(size: int = 10) -> str:
    signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, size, hashlib.sha256(b"root").digest()), [LOG])
    return signed.with_signature_lines([WITNESS.cosign(signed.body, 1700000000)]).to_text()


def _h(i: int) -> bytes:
    return hashlib.sha256(bytes([i])).digest()


def test_layout_matches_spec() -> None:
    cp = _checkpoint()
    proof = TlogProof(b"leaf data", 3, (_h(1), _h(2)), cp)
    text = proof.to_text()
    b64 = base64.b64encode
    assert text == (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {b64(b'leaf data').decode()}\n"
        "index 3\n"
        f"{b64(_h(1)).decode()}\n{b64(_h(2)).decode()}\n"
        "\n" + cp
    )
    again = TlogProof.from_text(text)
    assert again == proof
    assert again.to_text() == text
    assert again.signed_checkpoint.checkpoint.size == 10
    assert TlogProof.from_text(text.encode()) == proof


def test_without_extra_and_without_hashes() -> None:
    cp = _checkpoint(1)
    proof = TlogProof(None, 0, (), cp)
    text = proof.to_text()
    assert text == "c2sp.org/tlog-proof@v1\nindex 0\n\n" + cp
    assert TlogProof.from_text(text) == proof


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        lambda t: t.replace("index 3", "index 03"),
        lambda t: t.replace("index 3", "index -3"),
        lambda t: t.replace("index 3", "index 10"),  # not below the tree size
        lambda t: t.replace("index 3\n", ""),
        lambda t: t.replace("extra ", "extra  "),
        lambda t: t.replace("\n\n", "\n", 1),
        lambda t: t.replace("index 3\n", "index 3\nAAAA\n"),  # 3-byte hash
        lambda t: t.replace("index 3\n", "index 3\n!!!!\n"),
        lambda t: t.replace("index 3\n", "index 3\n", 1).replace("\n\n", "\n\nnot a checkpoint\n\n", 1),
        lambda t: t.replace("index 3\n", "extra AAAA\nindex 3\n").replace("extra bGVh", "xtra bGVh"),
    ],
)
def test_strict_parse(mutate: Callable[[str], str]) -> None:
    text = TlogProof(b"leaf", 3, (_h(1),), _checkpoint()).to_text()
    bad = mutate(text)
    assert bad != text
    with pytest.raises(FormatError):
        TlogProof.from_text(bad)


def test_constructor_checks() -> None:
    cp = _checkpoint(4)
    with pytest.raises(FormatError):
        TlogProof(None, 4, (), cp)
    with pytest.raises(FormatError):
        TlogProof(None, 0, (b"short",), cp)
    with pytest.raises(FormatError):
        TlogProof(None, 0, (), "not a note")


@settings(max_examples=50)
@given(
    extra=st.one_of(st.none(), st.binary(max_size=300)),
    index=st.integers(0, 9),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=10),
)
def test_round_trip_property(extra: bytes | None, index: int, proof: list[bytes]) -> None:
    p = TlogProof(extra, index, tuple(proof), CHECKPOINT)
    assert TlogProof.from_text(p.to_text()) == p


CHECKPOINT = _checkpoint()
