"""The witness core (C2SP tlog-witness v1.0.0) without HTTP: every status, rollback, fork, restart, races.

`TinyLog` is a real log in miniature: leaves, RFC 6962 roots and consistency proofs from the slow
reference implementation, checkpoints signed with a real Ed25519 note key. The integration tests reuse it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from evidence.checkpoint import Checkpoint, SignedCheckpoint
from evidence.cosignature import parse_witness_key, verify_cosignature
from evidence.errors import FormatError
from evidence.note import Ed25519Signer, generate_ed25519, parse_verifier_key
from notary_bridge.witness import (
    MAX_PROOF_LINES,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    Witness,
    WitnessHome,
    WitnessState,
    init_witness_home,
    load_witness,
)
from tests.unit.evidence import merkle_reference as ref

ORIGIN = "test.example/log"


class TinyLog:
    """A log of `n` leaves that can sign checkpoints and prove consistency (reference Merkle code)."""

    def __init__(self, origin: str = ORIGIN, prefix: bytes = b"leaf") -> None:
        skey, self.vkey = generate_ed25519(origin)
        self.signer = Ed25519Signer.from_skey(skey)
        self.origin = origin
        self.prefix = prefix

    def leaves(self, n: int) -> list[bytes]:
        """Leaf *hashes* (what the reference code works on)."""
        return [ref.leaf_hash(self.prefix + b"%d" % i) for i in range(n)]

    def root(self, n: int) -> bytes:
        return ref.mth(self.leaves(n))

    def note(self, n: int) -> str:
        return SignedCheckpoint.sign(Checkpoint(self.origin, n, self.root(n)), [self.signer]).to_text()

    def body(self, n: int) -> str:
        return Checkpoint(self.origin, n, self.root(n)).to_text()

    def proof(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        return ref.proof(old, self.leaves(new))

    def request(self, old: int, new: int) -> bytes:
        return AddCheckpointRequest(old, tuple(self.proof(old, new)), self.note(new)).to_bytes()


@pytest.fixture
def tiny() -> TinyLog:
    return TinyLog()


@pytest.fixture
def witness(tmp_path: Path, tiny: TinyLog) -> Witness:
    return load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])


def vkey_of(tmp_path: Path) -> str:
    return (tmp_path / "w" / "witness.vkey").read_text().strip()


def test_request_round_trip(tiny: TinyLog) -> None:
    req = AddCheckpointRequest(3, tuple(tiny.proof(3, 7)), tiny.note(7))
    assert AddCheckpointRequest.from_bytes(req.to_bytes()) == req
    text = req.to_bytes().decode()
    assert text.startswith("old 3\n") and "\n\n" + tiny.body(7) in text


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"old 1\n\n", b"old 01\n\nx", b"new 1\n\n" + b"a\n", b"old -1\n\nx\n",
    b"old 1\nnot-base64!\n\nx\n", b"old 1\nAAAA\n\nx\n", b"\xff\xfe", b"old 1 \n\nx\n",
])
def test_request_parse_rejects(body: bytes) -> None:
    with pytest.raises(FormatError):
        AddCheckpointRequest.from_bytes(body)


def test_first_checkpoint_cosigned_and_verifies(tmp_path: Path, witness: Witness, tiny: TinyLog) -> None:
    answer = witness.add_checkpoint(tiny.request(0, 5))
    assert answer.status == 200, answer.body
    assert answer.content_type.startswith("text/plain")
    lines = answer.body.decode().splitlines(keepends=True)
    assert len(lines) == 1
    t = verify_cosignature(tiny.body(5), lines[0], parse_witness_key(vkey_of(tmp_path)))
    assert t > 0
    assert witness.state.get(ORIGIN) == (5, tiny.root(5))


def test_consistent_growth_then_already_cosigned(witness: Witness, tiny: TinyLog) -> None:
    assert witness.add_checkpoint(tiny.request(0, 5)).status == 200
    assert witness.add_checkpoint(tiny.request(5, 13)).status == 200
    assert witness.add_checkpoint(tiny.request(13, 64)).status == 200
    # The same checkpoint again (old = its size): 200 again, state unchanged.
    again = witness.add_checkpoint(tiny.request(64, 64))
    assert again.status == 200
    assert witness.state.get(ORIGIN) == (64, tiny.root(64))


def test_409_old_size_mismatch_names_our_size(witness: Witness, tiny: TinyLog) -> None:
    assert witness.add_checkpoint(tiny.request(0, 8)).status == 200
    answer = witness.add_checkpoint(tiny.request(0, 10))
    assert (answer.status, answer.body, answer.content_type) == (409, b"8\n", SIZE_CONTENT_TYPE)
    answer = witness.add_checkpoint(tiny.request(4, 10))
    assert (answer.status, answer.body) == (409, b"8\n")
    # Resending from the size the witness named succeeds.
    assert witness.add_checkpoint(tiny.request(8, 10)).status == 200


def test_rollback_replayed_old_checkpoint_is_409(witness: Witness, tiny: TinyLog) -> None:
    assert witness.add_checkpoint(tiny.request(0, 5)).status == 200
    assert witness.add_checkpoint(tiny.request(5, 9)).status == 200
    # Replaying the size-5 checkpoint, as originally sent and as "old 5 -> 5".
    for body in (tiny.request(0, 5), tiny.request(5, 5)):
        answer = witness.add_checkpoint(body)
        assert (answer.status, answer.body) == (409, b"9\n")
    assert witness.state.get(ORIGIN) == (9, tiny.root(9))


def test_old_greater_than_new_is_400(witness: Witness, tiny: TinyLog) -> None:
    body = AddCheckpointRequest(9, (), tiny.note(5)).to_bytes()
    assert witness.add_checkpoint(body).status == 400


def test_fork_same_size_other_root_never_200(witness: Witness, tiny: TinyLog) -> None:
    evil = TinyLog(prefix=b"evil")
    evil.signer = tiny.signer  # the same log key signing a second history: a fork
    assert witness.add_checkpoint(tiny.request(0, 6)).status == 200
    for body in (evil.request(6, 6), evil.request(0, 6)):
        answer = witness.add_checkpoint(body)
        assert answer.status == 409
        assert answer.content_type == SIZE_CONTENT_TYPE and answer.body == b"6\n"
    # Growing the forked history from our size: its proof cannot lead from our root.
    forked = AddCheckpointRequest(6, tuple(evil.proof(6, 9)), evil.note(9)).to_bytes()
    assert witness.add_checkpoint(forked).status == 422
    assert witness.state.get(ORIGIN) == (6, tiny.root(6))
    # The signed refusals are kept as evidence.
    kept = witness.state.misbehaviour(ORIGIN)
    assert [s for s, _, _ in kept] == [409, 422]
    assert kept[1][2] == forked


def test_fork_first_seen_wins(tmp_path: Path, tiny: TinyLog) -> None:
    """Two witnesses seeing two branches each cosign only the branch they saw first."""
    evil = TinyLog(prefix=b"evil")
    evil.signer = tiny.signer
    w = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])
    assert w.add_checkpoint(evil.request(0, 4)).status == 200
    assert w.add_checkpoint(tiny.request(4, 8)).status == 422


def test_422_bad_proofs(witness: Witness, tiny: TinyLog) -> None:
    assert witness.add_checkpoint(tiny.request(0, 5)).status == 200
    good = tiny.proof(5, 12)
    bad = [good[0][:-1] + bytes([good[0][-1] ^ 1]), *good[1:]]
    for proof in (bad, good[:-1], [*good, good[0]], []):
        body = AddCheckpointRequest(5, tuple(proof), tiny.note(12)).to_bytes()
        assert witness.add_checkpoint(body).status == 422, proof
    # A proof where none is possible: from 0, or between equal sizes.
    assert witness.add_checkpoint(
        AddCheckpointRequest(5, (good[0],), tiny.note(5)).to_bytes()).status == 422


def test_422_proof_from_zero(tmp_path: Path, tiny: TinyLog) -> None:
    w = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])
    body = AddCheckpointRequest(0, (b"\x00" * 32,), tiny.note(5)).to_bytes()
    assert w.add_checkpoint(body).status == 422
    assert w.state.get(ORIGIN) is None


def test_404_unknown_origin(witness: Witness) -> None:
    other = TinyLog(origin="other.example/log")
    assert witness.add_checkpoint(other.request(0, 3)).status == 404


def test_403_no_trusted_signature(witness: Witness, tiny: TinyLog) -> None:
    impostor = TinyLog()  # same origin, another key
    assert witness.add_checkpoint(impostor.request(0, 3)).status == 403
    # A checkpoint with no signature line at all, with and without the blank line.
    for note in (tiny.body(3), tiny.body(3) + "\n"):
        body = b"old 0\n\n" + note.encode()
        assert witness.add_checkpoint(body).status == 403, note
    # A signature line by the right name with a corrupted signature.
    note = tiny.note(3)
    cut = note.rindex(" ") + 1
    sig = note[cut:-1]
    flipped = ("A" if sig[10] != "A" else "B")
    broken = note[:cut] + sig[:10] + flipped + sig[11:] + "\n"
    assert witness.add_checkpoint(b"old 0\n\n" + broken.encode()).status == 403
    assert witness.state.get(ORIGIN) is None


def test_400_garbage_and_too_many_proof_lines(witness: Witness, tiny: TinyLog) -> None:
    assert witness.add_checkpoint(b"hello").status == 400
    assert witness.add_checkpoint(b"old 0\n\nnot a checkpoint\n\n\xe2\x80\x94 x y\n").status == 400
    lines = b"".join(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" for _ in range(MAX_PROOF_LINES + 1))
    body = b"old 1\n" + lines + b"\n" + tiny.note(2).encode()
    assert witness.add_checkpoint(body).status == 400
    assert witness.state.get(ORIGIN) is None


def test_restart_keeps_state_and_key(tmp_path: Path, tiny: TinyLog) -> None:
    w1 = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])
    vkey = vkey_of(tmp_path)
    assert w1.add_checkpoint(tiny.request(0, 7)).status == 200
    w2 = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])
    assert vkey_of(tmp_path) == vkey
    assert w2.add_checkpoint(tiny.request(0, 7)).body == b"7\n"
    answer = w2.add_checkpoint(tiny.request(7, 9))
    assert answer.status == 200
    verify_cosignature(tiny.body(9), answer.body.decode(), parse_witness_key(vkey))


def test_home_refuses_other_name(tmp_path: Path) -> None:
    init_witness_home(tmp_path, "a.example/w")
    from notary_bridge.errors import WitnessError

    with pytest.raises(WitnessError, match="named"):
        init_witness_home(tmp_path, "b.example/w")
    assert (WitnessHome(tmp_path).skey.stat().st_mode & 0o777) == 0o600


def test_sm2_profile_cosigns_too(tmp_path: Path, tiny: TinyLog) -> None:
    w = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey], sm2=True)
    answer = w.add_checkpoint(tiny.request(0, 4))
    assert answer.status == 200
    ed_line, sm2_line = answer.body.decode().splitlines(keepends=True)
    home = WitnessHome(tmp_path / "w")
    verify_cosignature(tiny.body(4), ed_line, parse_witness_key(home.vkey.read_text().strip()))
    verify_cosignature(tiny.body(4), sm2_line, parse_witness_key(home.sm2_vkey.read_text().strip()))


def test_log_with_two_keys_either_verifies(tmp_path: Path, tiny: TinyLog) -> None:
    _, other_vkey = generate_ed25519(ORIGIN)
    w = load_witness(tmp_path / "w", "witness.example/w1", [other_vkey, tiny.vkey])
    assert w.add_checkpoint(tiny.request(0, 2)).status == 200
    assert parse_verifier_key(tiny.vkey).name == ORIGIN


def test_concurrent_requests_never_roll_back(tmp_path: Path, tiny: TinyLog) -> None:
    """The spec's race: many requests from one old size; exactly one advances, the rest get 409."""
    w = load_witness(tmp_path / "w", "witness.example/w1", [tiny.vkey])
    assert w.add_checkpoint(tiny.request(0, 4)).status == 200
    sizes = list(range(5, 21))
    bodies = {n: tiny.request(4, n) for n in sizes}
    results: dict[int, int] = {}
    barrier = threading.Barrier(len(sizes))

    def send(n: int) -> None:
        barrier.wait()
        results[n] = w.add_checkpoint(bodies[n]).status

    threads = [threading.Thread(target=send, args=(n,)) for n in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, s in results.items() if s == 200]
    assert len(winners) == 1
    assert all(s == 409 for n, s in results.items() if n != winners[0])
    assert w.state.get(ORIGIN) == (winners[0], tiny.root(winners[0]))


def test_state_advance_is_compare_and_set(tmp_path: Path) -> None:
    s = WitnessState(tmp_path / "w.db")
    assert s.advance("o", None, 3, b"a" * 32)
    assert not s.advance("o", None, 4, b"b" * 32)
    assert not s.advance("o", (2, b"a" * 32), 4, b"b" * 32)
    assert s.advance("o", (3, b"a" * 32), 4, b"b" * 32)
    assert s.get("o") == (4, b"b" * 32)


def test_witness_needs_a_signer(tmp_path: Path) -> None:
    from notary_bridge.errors import WitnessError

    with pytest.raises(WitnessError):
        Witness([], [], WitnessState(tmp_path / "w.db"))
    with pytest.raises(WitnessError):
        load_witness(tmp_path / "w", "x.example/w", [])
    with pytest.raises(WitnessError, match="--log"):
        load_witness(tmp_path / "w", "x.example/w", ["not-a-key"])
