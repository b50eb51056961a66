"""Single-byte flips across a real signed packet: every flip inside a signed range reads "altered after
signing" (never "unreadable", never a pass); a flip in an unsigned signature hole is never a pass either."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from depository.packets import init_packet_material, seal_packet
from evidence.byterange import scan
from evidence.packet import render_packet
from evidence.summary import ALTERED, VERIFIED, WRONG_FILE, summarize
from evidence.verify import Trust, verify_packet
from tests.unit.evidence.test_packet_support import CONTENT, make_proof


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Trust]:
    """A B-LTA packet (signature + document timestamp) and the trust directory that goes with it."""
    tmp = tmp_path_factory.mktemp("flip")
    p = make_proof()
    material = init_packet_material(tmp / "home")
    signed = seal_packet(render_packet(p.packet_input(material.chain_pem())), material, timestamper=p.stamper,
                         tsa_ca_pems=[p.tsa_ca_pem])
    trust_dir = p.write_trust(tmp / "trust")
    shutil.copy(material.ca_path, trust_dir / "packet-ca.pem")
    return signed, Trust.from_dir(trust_dir)


def _flip(pdf: bytes, i: int) -> bytes:
    return pdf[:i] + bytes([pdf[i] ^ 0x01]) + pdf[i + 1:]


def test_the_genuine_packet_is_verified_with_its_strongest_statement(sealed: tuple[bytes, Trust]) -> None:
    pdf, trust = sealed
    report = scan(pdf)
    assert [s.kind for s in report.signatures] == ["signature", "timestamp"]
    assert report.altered() is None and report.damaged() is None
    s = summarize(verify_packet(pdf, file=CONTENT, trust=trust), file_given=True)
    assert s.verdict == VERIFIED, s
    assert "existed no later than" in s.headline and "cosigned by the witnesses" in s.headline
    assert any("the deposited file" in line for line in s.proven)


def test_a_genuine_packet_with_the_wrong_original_says_exactly_that(sealed: tuple[bytes, Trust]) -> None:
    pdf, trust = sealed
    s = summarize(verify_packet(pdf, file=CONTENT + b"x", trust=trust), file_given=True)
    assert s.verdict == WRONG_FILE
    assert s.headline == "The packet is genuine, but the file you gave is not the deposited file"
    assert s.proven and "existed no later than" in s.proven[0]


def test_every_flip_inside_a_signed_range_reads_altered(sealed: tuple[bytes, Trust]) -> None:
    pdf, trust = sealed
    report = scan(pdf)
    holes = [s.hole for s in report.signatures]
    # evenly spaced, plus the places a parser trips over first: header, xref tables, trailers, the
    # signature dictionaries (ByteRange keyword and digits), and the last byte
    positions = set(range(0, len(pdf), max(1, len(pdf) // 97)))
    for marker in (b"%PDF-", b"xref", b"trailer", b"startxref", b"/ByteRange", b"/Type /Sig", b"/EmbeddedFiles",
                   b"FlateDecode", b"endstream", b"%%EOF"):
        start = 0
        while (i := pdf.find(marker, start)) >= 0:
            positions.update({i, i + 1, i + len(marker) - 1})
            start = i + 1
    for s in report.signatures:
        positions.update(s.offset + k for k in range(0, 40, 3))  # through "/ByteRange [0 b c d]"
    positions.add(len(pdf) - 1)
    inside = sorted(i for i in positions if not any(b <= i < c for b, c in holes))
    assert len(inside) > 100
    for i in inside:
        checks = verify_packet(_flip(pdf, i), file=CONTENT, trust=trust)
        s = summarize(checks, file_given=True)
        assert s.verdict == ALTERED and s.headline == "This packet was altered after it was signed", (i, s)
        assert [c.name for c in checks] == ["pdf-signature"] and checks[0].status == "failed"
        assert checks[0].detail.startswith("altered after signing"), (i, checks[0].detail)


def test_a_flip_inside_a_signature_hole_is_never_a_pass(sealed: tuple[bytes, Trust]) -> None:
    pdf, trust = sealed
    report = scan(pdf)
    for s in report.signatures:
        b, c = s.hole
        for i in (b + 1, b + 2, b + 40, b + (c - b) // 3, c - 2):  # DER header, body, zero padding
            checks = verify_packet(_flip(pdf, i), file=CONTENT, trust=trust)
            assert any(ch.status == "failed" for ch in checks), (s.kind, i)
            assert summarize(checks, file_given=True).verdict == ALTERED, (s.kind, i)


def test_bytes_appended_after_the_last_signature_read_altered(sealed: tuple[bytes, Trust]) -> None:
    pdf, trust = sealed
    checks = verify_packet(pdf + b"\n1 0 obj\n<<>>\nendobj\n", trust=trust)
    assert summarize(checks).verdict == ALTERED
    assert "covered by no signature" in checks[0].detail


def test_a_packet_without_a_tsa_is_partial_not_green(tmp_path: Path) -> None:
    p = make_proof(with_witnesses=False, with_token=False)
    material = init_packet_material(tmp_path / "home")
    pdf = seal_packet(render_packet(p.packet_input(material.chain_pem())), material)
    t = Trust(log_vkey=p.trust.log_vkey, log_sm2_pem=p.trust.log_sm2_pem,
              packet_ca_pem=material.ca_path.read_bytes())
    checks = verify_packet(pdf, file=CONTENT, trust=t)
    status = {c.name: c.status for c in checks}
    assert status["pdf-document-timestamp"] == status["timestamp-token"] == status["witness-quorum"] == "not present"
    assert not any(c.ok for c in checks if c.status != "verified")
    s = summarize(checks, file_given=True)
    assert s.verdict == "partial" and "existed no later" not in s.headline and "witness" not in s.headline
    assert "is recorded in the signed log" in s.headline
    i = pdf.index(b"stream", 2000) + 20  # the single signature covers the whole file
    assert summarize(verify_packet(_flip(pdf, i), trust=t)).verdict == ALTERED
