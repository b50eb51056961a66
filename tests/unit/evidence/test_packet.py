"""Packet layout: A4 pages, nothing off the page, Chinese text, the attachments, and a signed round trip."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from depository.packets import init_packet_material, seal_packet
from evidence.packet import (
    CHECKPOINT_BODY,
    PROOF_JSON,
    PacketInput,
    certificate_number,
    group_hex,
    inclusion_path,
    original_name,
    packet_attachments,
    render_packet,
    verification_url,
)
from evidence.verify import all_passed, verify_packet
from tests.unit.evidence.test_packet_support import CONTENT, make_proof

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "packets"
A4 = (595.28, 841.89)


def words_off_page(pdf: Path) -> list[str]:
    """Every word whose pdftotext -bbox box is not inside the A4 media box."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    bad = []
    import re

    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
                         out):
        x0, y0, x1, y1 = (float(m.group(i)) for i in range(1, 5))
        if x0 < 0 or y0 < 0 or x1 > A4[0] + 0.5 or y1 > A4[1] + 0.5:
            bad.append(m.group(5))
    return bad


def render_png(pdf: Path, stem: str) -> list[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(ARTIFACTS / stem)], check=True)
    return sorted(ARTIFACTS.glob(f"{stem}*.png"))


def page_count(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages:")))


def test_helpers() -> None:
    assert group_hex("ab" * 8, 4) == "abab abab abab abab"
    assert certificate_number(b"x").startswith("EP-") and len(certificate_number(b"x")) == 22
    assert original_name("", "租赁 合同.pdf") == "original-content.pdf"
    assert original_name("dep_1.", "a b.txt") == "dep_1.original-a_b.txt"
    assert verification_url("https://x/", "dep_1", "00") == "https://x/verify?deposit=dep_1&sha256=00"


def test_inclusion_path_ends_at_the_root() -> None:
    p = make_proof(with_witnesses=False, with_token=False)
    from evidence.checkpoint import SignedCheckpoint
    from evidence.merkle import SHA256

    b = p.bundle
    steps = inclusion_path(b.leaf_index, b.tree_size, SHA256.hash_leaf(b.leaf_data), b.inclusion_proof)
    assert steps[-1].parent == SignedCheckpoint.from_text(b.checkpoint).checkpoint.root_hash


def test_attachments_and_layout(tmp_path: Path) -> None:
    p = make_proof()
    files = packet_attachments(p.packet_input(b"chain"))
    assert json.loads(files[PROOF_JSON]) == p.bundle.to_json()
    assert files[CHECKPOINT_BODY] == p.bundle.checkpoint.split("\n\n")[0].encode() + b"\n"
    assert set(files) >= {"proof.json", "tlog-proof.txt", "checkpoint.txt", "timestamp.tsr", "tsa-chain.pem",
                          "signer-chain.pem", "original-lease.pdf"}
    pdf = tmp_path / "unsigned.pdf"
    pdf.write_bytes(render_packet(p.packet_input()))
    assert page_count(pdf) == 5
    assert words_off_page(pdf) == []
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())
    assert "张三" in text and "902(13)" in text and "Art. 11" in text
    assert "openssl ts -verify -data checkpoint-body.txt -in timestamp.tsr -token_in -CAfile tsa-ca.pem" in text
    listed = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "proof.json" in listed and "timestamp.tsr" in listed


def test_sealed_packet_verifies_and_a_pdf_byte_breaks_it(tmp_path: Path) -> None:
    p = make_proof()
    material = init_packet_material(tmp_path / "home")
    unsigned = render_packet(p.packet_input(material.chain_pem()))
    signed = seal_packet(unsigned, material, timestamper=p.stamper, tsa_ca_pems=[p.tsa_ca_pem])
    trust_dir = p.write_trust(tmp_path / "trust")
    shutil.copy(material.ca_path, trust_dir / "packet-ca.pem")
    from evidence.verify import Trust

    trust = Trust.from_dir(trust_dir)
    checks = verify_packet(signed, file=CONTENT, trust=trust)
    assert all_passed(checks), [c for c in checks if not c.ok]
    assert {c.name for c in checks} >= {"pdf-signature", "pdf-coverage", "pdf-document-timestamp", "attachments"}
    out = tmp_path / "packet.pdf"
    out.write_bytes(signed)
    assert len(render_png(out, "unit-packet")) == 5
    # one byte inside the signed page content (not in the signature's /Contents hole)
    i = signed.index(b"stream", 2000) + 20
    tampered = signed[:i] + bytes([signed[i] ^ 1]) + signed[i + 1 :]
    bad = {c.name for c in verify_packet(tampered, trust=trust) if not c.ok}
    assert "pdf-signature" in bad


def test_matter_packet_names_attachments_per_deposit(tmp_path: Path) -> None:
    a, b = make_proof(), make_proof(b"second document", deposit_id="dep_second000000000000000")
    inp = PacketInput([a.entry(), b.entry(None)], "https://depository.test", "depository.test/log",
                      a.packet_input().generated_at, None, "M-2026-001")
    files = packet_attachments(inp)
    assert f"{a.facts.deposit_id}.proof.json" in files and f"{b.facts.deposit_id}.proof.json" in files
    pdf = tmp_path / "matter.pdf"
    pdf.write_bytes(render_packet(inp))
    assert page_count(pdf) == 8
    assert words_off_page(pdf) == []


@pytest.mark.parametrize("data", [b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"])
def test_non_packet_is_one_format_error(data: bytes) -> None:
    from evidence.errors import FormatError

    with pytest.raises(FormatError) as e:
        verify_packet(data)
    assert "\n" not in e.value.diagnostics()


def _fonts(pdf: Path) -> list[list[str]]:
    out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()[2:] if line.strip()]


def test_every_font_is_embedded_and_subset_including_chinese(tmp_path: Path) -> None:
    """Archival packets: pdffonts lists every font embedded (emb yes, sub yes), a CJK one among them, for a
    court-ready, a preliminary and a matter packet; Chinese party names come out of the text layer."""
    a = make_proof()
    bare = make_proof(b"a bare deposit", with_witnesses=False, with_token=False,
                      deposit_id="dep_bare00000000000000000000")
    matter = PacketInput([a.entry(), bare.entry(None)], "https://depository.test", "depository.test/log",
                         a.packet_input().generated_at, None, "M-2026-001")
    for name, inp in (("ready", a.packet_input()), ("preliminary", bare.packet_input()), ("matter", matter)):
        pdf = tmp_path / f"{name}.pdf"
        pdf.write_bytes(render_packet(inp))
        rows = _fonts(pdf)
        assert rows, name
        # columns: name type [type2] encoding emb sub uni object-id generation
        assert all(r[-5] == "yes" and r[-4] == "yes" for r in rows), (name, rows)
        assert any("WenQuanYi" in r[0] or "CJK" in r[0] or "Ming" in r[0] for r in rows), rows
        assert not any(r[0].split("+")[-1] in ("Helvetica", "Courier", "STSong-Light") for r in rows), rows
    text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "ready.pdf"), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "parties: 张三; Acme Ltd." in text and '["张三"' not in text
    assert "电子数据存证证书" in text


def test_metadata_values_read_as_words() -> None:
    from evidence.packet import meta_text

    assert meta_text([{"name": "李伟", "role": "tenant"}, {"name": "Acme Ltd."}]) == "李伟 (tenant); Acme Ltd."
    assert meta_text({"name": "Acme", "role": "landlord", "id": "91310000"}) == "Acme (landlord, id 91310000)"
    assert meta_text({"start": "2026-01-01", "end": "2027-01-01"}) == "start: 2026-01-01, end: 2027-01-01"
    assert meta_text(["a", 2, None]) == "a; 2; null"


def test_a_missing_font_is_one_clear_error() -> None:
    from evidence.errors import FontError
    from evidence.fonts import LATIN_FILES, packet_fonts

    with pytest.raises(FontError, match="fonts-wqy-microhei"):
        packet_fonts(latin=LATIN_FILES, cjk=[("/nonexistent/cjk.ttc", 0)])
    with pytest.raises(FontError, match="fonts-liberation"):
        packet_fonts(latin={"EvidenceSansMissing": (("/nonexistent/sans.ttf",), "fonts-liberation")})
