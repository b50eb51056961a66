"""Evidence packets end to end: a real home and log, our TSA over HTTP, the API route and the CLI.

The packet is checked by tools that are not ours where possible: poppler's `pdfsig` (valid, whole file
signed) and pyHanko's validator with our packet CA as the only trust root.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore

from depository.app import create_app
from depository.config import load_config
from depository.deposits import DepositRequest
from depository.log import integrate_all
from depository.packets import build_packet, init_packet_material
from depository.wiring import Services, build_services, init_home
from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
from notary_bridge.tsa_server import create_app as tsa_app
from tests.unit.evidence.test_packet import page_count, render_png, words_off_page

REPO = Path(__file__).resolve().parents[2]
DOC = "Lease agreement 租赁合同\n".encode() * 50


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    init_tsa_material(home, "Packet Test")
    with ServerThread(tsa_app(load_core(home))) as tsa:
        config = load_config(home=home, env={}, tsa_urls=[tsa.url], run_integrator=False)
        init_home(config)
        s = build_services(config, notary=False)
        tid, api_key = s.tenants.create("Acme 律师事务所")
        reqs = [DepositRequest("contract", hashlib.sha256(DOC + bytes([i])).digest(),
                               hashlib.new("sm3", DOC + bytes([i])).digest(), len(DOC) + 1,
                               {"title": f"lease {i}", "matter": "M-7"}, f"lease-{i}.txt", "text/plain")
                for i in range(3)]
        deps = s.deposits.create_many(tid, reqs)
        assert isinstance(deps, list)
        integrate_all(s.log, 1000)
        yield {"home": home, "s": s, "deps": deps, "api_key": api_key, "config": config}
        s.close()


def _ca(path: Path) -> x509.Certificate:
    _, _, der = pem.unarmor(path.read_bytes())
    return x509.Certificate.load(der)


def test_packet_is_pades_lta_valid_for_pdfsig_and_pyhanko(env: dict[str, Any], tmp_path: Path) -> None:
    s: Services = env["s"]
    pdf = build_packet(s, [env["deps"][0]], preliminary=True)  # this home has a TSA but no notary
    out = tmp_path / "packet.pdf"
    out.write_bytes(pdf)
    report = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True).stdout
    blocks = report.split("Signature #")[1:]
    assert len(blocks) == 2, report
    assert all("Signature Validation: Signature is Valid." in b for b in blocks[:1]), report
    assert "Total document signed" in blocks[-1], report
    r = PdfFileReader(io.BytesIO(pdf))
    sig, ts = r.embedded_signatures
    material = init_packet_material(env["home"])
    from pyhanko_certvalidator import ValidationContext

    dss = DocumentSecurityStore.read_dss(r)
    vc = dss.as_validation_context({"trust_roots": [_ca(material.ca_path)], "allow_fetching": False})
    tsa_vc = dss.as_validation_context({"trust_roots": [_ca(env["home"] / "tsa" / "tsa-ca.pem")],
                                        "allow_fetching": False})
    status = validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=tsa_vc)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.valid
    assert isinstance(vc, ValidationContext)
    ts_status = validate_pdf_timestamp(ts, validation_context=tsa_vc)
    assert ts_status.intact and ts_status.valid and ts_status.trusted
    assert len(render_png(out, "integration-packet")) == page_count(out)
    assert words_off_page(out) == []


def _trust(env: dict[str, Any], tmp_path: Path) -> Path:
    s: Services = env["s"]
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "log.vkey").write_text(s.keys.vkey + "\n")
    (trust / "log-sm2.pem").write_text(s.keys.sm2_public_pem)
    shutil.copy(env["home"] / "packet" / "packet-ca.pem", trust / "packet-ca.pem")
    return trust


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "--home", str(home), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_cli_proof_and_verify(env: dict[str, Any], tmp_path: Path) -> None:
    d = env["deps"][0]
    out = tmp_path / "p.pdf"
    r = _cli("proof", d.id, "-o", str(out), home=env["home"])
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--preliminary" in r.stderr, r.stderr
    assert not out.exists()
    r = _cli("proof", d.id, "-o", str(out), "--preliminary", home=env["home"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "preliminary"
    original = tmp_path / "lease-0.txt"
    original.write_bytes(DOC + b"\0")
    trust = _trust(env, tmp_path)
    r = _cli("verify", str(out), "--file", str(original), "--trust", str(trust), "--json", home=env["home"])
    # the CLI's process sees no TSA or notary in this home: no witnesses, no token, no document timestamp,
    # so the verdict is "partial" (exit 3), never a plain pass
    assert r.returncode == 3, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert not report["ok"] and report["verdict"] == "partial"
    assert {c["name"] for c in report["checks"]} >= {"pdf-signature", "file-hashes", "inclusion"}
    assert {c["name"] for c in report["checks"] if c["status"] == "not present"} == {
        "witness-quorum", "timestamp-token", "time-order", "pdf-document-timestamp"}
    assert "existed no later" not in report["headline"] and "is recorded in the signed log" in report["headline"]
    r = _cli("verify", str(out), "--trust", str(trust), home=env["home"])
    assert r.returncode == 3 and "SOME EVIDENCE IS NOT PRESENT" in r.stdout
    assert "only the depository vouches for the time" in " ".join(r.stdout.split())
    bad = tmp_path / "bad.txt"
    bad.write_bytes(DOC + b"\1")
    r = _cli("verify", str(out), "--file", str(bad), "--json", home=env["home"])
    assert r.returncode == 1
    assert [c["name"] for c in json.loads(r.stdout)["checks"] if c["status"] == "failed"] == ["file-hashes"]
    assert json.loads(r.stdout)["verdict"] == "wrong-file"
    truncated = tmp_path / "t.pdf"
    truncated.write_bytes(out.read_bytes()[: len(out.read_bytes()) // 2])
    for f in (truncated, original):
        r = _cli("verify", str(f), home=env["home"])
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_cli_matter_packet(env: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "matter.pdf"
    r = _cli("proof", *[d.id for d in env["deps"]], "-o", str(out), "--preliminary", home=env["home"])
    assert r.returncode == 0, r.stderr
    listed = subprocess.run(["pdfdetach", "-list", str(out)], capture_output=True, text=True).stdout
    assert all(f"{d.id}.proof.json" in listed for d in env["deps"])
    assert page_count(out) == 1 + 2 * 3 + 3
    assert words_off_page(out) == []
    render_png(out, "integration-matter")
    r = _cli("verify", str(out), home=env["home"])
    assert r.returncode == 3, r.stdout  # no witnesses or token in this home: partial, nothing failed


def test_api_route(env: dict[str, Any]) -> None:
    app = create_app(env["config"], env["s"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {env['api_key']}"}
    d = env["deps"][1]
    # no witnesses or TSA notary in this home: the packet can never be court-ready, so 409 says so (no
    # Retry-After: waiting will not help) and the preliminary packet is there when asked for
    resp = client.get(f"/v1/deposits/{d.id}/packet.pdf", headers=auth)
    assert resp.status_code == 409 and resp.mimetype == "application/problem+json"
    assert resp.json["type"].endswith("/not-court-ready") and "Retry-After" not in resp.headers
    assert "preliminary=1" in resp.json["detail"] and "RFC 3161 timestamp" in resp.json["detail"]
    resp = client.get(f"/v1/deposits/{d.id}/packet.pdf?preliminary=1", headers=auth)
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF-") and resp.headers["Evidence-Packet-Status"] == "preliminary"
    assert client.get("/v1/deposits/dep_000000000000000000000000/packet.pdf", headers=auth).status_code == 404
    assert client.get(f"/v1/deposits/{d.id}/packet.pdf").status_code == 401
