"""Readiness is a state: during a real witness outage (the project's witness servers stopped on 127.0.0.1,
our TSA up) a packet is not offered as court-ready. The API answers 409 with Retry-After, or the marked
preliminary packet when asked; once the witnesses are back the same deposit's packet is court-ready."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depository.app import create_app
from depository.deposits import DepositRequest
from depository.log import integrate_all
from depository.wiring import Services, build_services
from evidence.summary import summarize
from evidence.verify import Trust, verify_packet
from tests.integration.test_notary import Parties, make_setup, row, wait_for

DOC = "租赁合同 lease between 李伟 and Acme\n".encode() * 30


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[Services, Parties, Any, dict[str, str], Any]]:
    config, parties = make_setup(tmp_path, None)
    for name in ("w1", "w2", "w3"):
        parties.stop_witness(name)
    s = build_services(config)
    try:
        s.notary.start()
        tid, key = s.tenants.create("Acme 律师事务所")
        [d] = s.deposits.create_many(tid, [DepositRequest(  # type: ignore[misc]
            "contract", hashlib.sha256(DOC).digest(), hashlib.new("sm3", DOC).digest(), len(DOC),
            {"title": "lease", "matter": "M-9", "parties": [{"name": "李伟"}, {"name": "Acme"}]}, "lease.txt")])
        integrate_all(s.log, 1000)
        size = s.log.latest_checkpoint().size
        wait_for(lambda: row(s, size).timestamped, timeout_s=20)
        client = create_app(config, s).test_client()
        yield s, parties, d, {"Authorization": f"Bearer {key}"}, client
    finally:
        s.close()
        parties.stop_all()


def _trust(s: Services) -> Trust:
    from depository.console.verify_views import home_trust

    return home_trust(s)


def _text(pdf: bytes, tmp: Path) -> str:
    f = tmp / "p.pdf"
    f.write_bytes(pdf)
    return " ".join(subprocess.run(["pdftotext", str(f), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())


def test_packet_during_a_witness_outage_is_preliminary_and_says_why(
        outage: tuple[Services, Parties, Any, dict[str, str], Any], tmp_path: Path) -> None:
    s, parties, d, auth, client = outage
    assert not row(s, s.log.latest_checkpoint().size).witnessed
    # the default is court-ready only: 409 with Retry-After (the witnesses are configured, just away)
    r = client.get(f"/v1/deposits/{d.id}/packet.pdf", headers=auth)
    assert r.status_code == 409 and r.mimetype == "application/problem+json", r.data[:300]
    assert r.json["type"].endswith("/not-court-ready") and int(r.headers["Retry-After"]) > 0
    assert "quorum of the witnesses (2 of 3" in r.json["detail"] and "0 so far" in r.json["detail"]
    assert list(r.json["missing"]) == [d.id] and len(r.json["missing"][d.id]) == 1
    # the user's other choice: the preliminary packet, marked so on the first page and every page
    r = client.get(f"/v1/deposits/{d.id}/packet.pdf?preliminary=1", headers=auth)
    assert r.status_code == 200 and r.headers["Evidence-Packet-Status"] == "preliminary"
    text = _text(r.data, tmp_path)
    assert text.startswith("PRELIMINARY — NOT COURT-READY")
    assert "It still lacks: • cosignatures by a quorum of the witnesses (2 of 3" in text
    assert "RFC 3161 timestamp (without one" not in text  # the timestamp is there: not listed as missing
    assert text.count("PRELIMINARY (no witness quorum)") >= 5  # the footer of every page
    # the declaration claims exactly what the packet holds: a timestamp, no witnesses
    assert "No independent witness has cosigned the checkpoint in this packet" in text
    assert "each checkpoint carries an RFC 3161 timestamp token from Depository TSA" in text
    assert "cosigned by the independent witnesses" not in text
    # /verify with this home's trust: nothing false, preliminary, never a green pass
    checks = verify_packet(r.data, trust=_trust(s))
    summary = summarize(checks)
    assert summary.verdict == "preliminary", summary
    assert summary.headline == "This packet is preliminary, not court-ready: it lacks a witness quorum"
    assert {c.name for c in checks if c.status == "failed"} == {"witness-quorum"}
    assert "existed no later than" in summary.proven[0]  # the timestamp it does carry is proven

    # the witnesses come back: the same deposit's packet becomes court-ready, with nothing missing
    for name in ("w1", "w2", "w3"):
        parties.start_witness(name)
    wait_for(lambda: row(s, s.log.latest_checkpoint().size).witnessed, timeout_s=30)
    r = client.get(f"/v1/deposits/{d.id}/packet.pdf", headers=auth)
    assert r.status_code == 200 and r.headers["Evidence-Packet-Status"] == "court-ready"
    text = _text(r.data, tmp_path)
    assert "PRELIMINARY" not in text and "Court-ready: witnessed to quorum and timestamped" in text
    assert "is cosigned by the independent witnesses" in text
    summary = summarize(verify_packet(r.data, trust=_trust(s)))
    assert summary.verdict == "verified" and "cosigned by the witnesses" in summary.headline


def test_console_offers_court_ready_only_when_it_is(
        outage: tuple[Services, Parties, Any, dict[str, str], Any]) -> None:
    """The deposit page names what is missing and offers the preliminary packet; the matter packet waits."""
    import re

    from depository.console.users import Users

    s, _parties, d, _, client = outage
    Users(s.engine).create(d.tenant_id, "clerk@example.com", "a long enough passphrase", "legal")
    page = client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)  # type: ignore[union-attr]
    ok = client.post("/console/sign-in", data={"email": "clerk@example.com", "password": "a long enough passphrase",
                                               "csrf_token": token})
    assert ok.status_code == 303, ok.text[:300]
    html = client.get(f"/console/deposits/{d.id}").text
    assert 'data-readiness="preliminary"' in html and "Not court-ready yet" in html
    assert "court-ready packet</a>" not in html and 'id="packet"' not in html
    assert "cosignatures by a quorum of the witnesses" in html and 'id="preliminary-packet"' in html
    r = client.get(f"/console/deposits/{d.id}/packet.pdf")
    assert r.status_code == 409 and "Retry-After" in r.headers
    r = client.get(f"/console/deposits/{d.id}/packet.pdf?preliminary=1")
    assert r.status_code == 200 and "preliminary-evidence-packet" in r.headers["Content-Disposition"]
    matter = client.get("/console/matters/M-9").text
    assert 'id="matter-packet"' not in matter and 'id="preliminary-matter-packet"' in matter
    assert client.get("/console/matter-packet.pdf?matter=M-9").status_code == 409
    assert "cosigned by independent witnesses and timestamped" in html  # the footer: both are configured


def test_healthz_on_a_readme_only_home_is_degraded_but_serving(tmp_path: Path) -> None:
    """No TSA, no witnesses (the README's "Everyday use" without them): /healthz says degraded and names
    both as not configured, with HTTP 200 (nothing is failing, so a load balancer keeps the server)."""
    from depository.config import load_config
    from depository.wiring import init_home

    config = load_config(env={}, home=tmp_path / "home", run_integrator=False)
    init_home(config)
    s = build_services(config)
    try:
        r = create_app(config, s).test_client().get("/healthz")
        assert r.status_code == 200, r.json
        assert r.json["status"] == "degraded" and r.json["court_ready"] is False and r.json["failing"] is False
        assert r.json["checks"]["tsa"]["status"] == r.json["checks"]["witnesses"]["status"] == "not-configured"
        assert "court-ready" in r.json["checks"]["tsa"]["detail"]
    finally:
        s.close()


def test_healthz_with_tsa_and_witnesses_is_ok_then_503_in_an_outage(tmp_path: Path) -> None:
    config, parties = make_setup(tmp_path, None)
    s = build_services(config)
    try:
        s.notary.start()
        integrate_all(s.log, 1000)
        wait_for(lambda: s.health()["status"] == "ok", timeout_s=20)
        client = create_app(config, s).test_client()
        r = client.get("/healthz")
        assert r.status_code == 200 and r.json["court_ready"] is True
        for name in ("w1", "w2", "w3"):
            parties.stop_witness(name)
        s.log.add("x-1", b"evidence-deposit/v1\nid x-1\n")
        integrate_all(s.log, 1000)
        wait_for(lambda: s.health()["checks"]["witnesses"]["status"] == "degraded", timeout_s=20)
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json["checks"]["witnesses"]["status"] == "degraded"
    finally:
        s.close()
        parties.stop_all()


def test_verify_page_on_a_readme_only_home_never_shows_green_for_absent_evidence(tmp_path: Path) -> None:
    """The home of "Everyday use" without a TSA or witnesses: its (preliminary) packet on /verify reads
    "partial" with the missing evidence named, and no check is rendered as verified unless it is."""
    import re

    from depository.config import load_config
    from depository.packets import build_packet
    from depository.wiring import init_home

    config = load_config(env={}, home=tmp_path / "home", run_integrator=False)
    init_home(config)
    s = build_services(config)
    try:
        tid, _ = s.tenants.create("Acme")
        [d] = s.deposits.create_many(tid, [DepositRequest(  # type: ignore[misc]
            "other", hashlib.sha256(DOC).digest(), hashlib.new("sm3", DOC).digest(), len(DOC), {}, "x.txt")])
        integrate_all(s.log, 1000)
        pdf = build_packet(s, [d], preliminary=True)
        client = create_app(config, s).test_client()
        page = client.get("/verify")
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)  # type: ignore[union-attr]
        import io

        r = client.post("/verify", data={"csrf_token": token, "packet": (io.BytesIO(pdf), "p.pdf"),
                                         "file": (io.BytesIO(DOC), "x.txt")})
        assert r.status_code == 200, r.text[:500]
        html = r.text
        assert 'data-verdict="partial"' in html and "class=\"card result partial\"" in html
        headline = re.search(r'<h2 id="res-h">([^<]*)</h2>', html).group(1)  # type: ignore[union-attr]
        assert "is recorded in the signed log" in headline and "existed no later than" not in headline
        assert "witness" not in headline and "The packet is valid" not in html
        for name in ("witness-quorum", "timestamp-token", "time-order", "pdf-document-timestamp"):
            li = re.search(rf'<li class="check (\w+)" data-check="{name}" data-status="([^"]+)"', html)
            assert li is not None and li.groups() == ("absent", "not present"), (name, li and li.groups())
        assert "only the depository vouches for the time" in html
        assert "no timestamp authority or witnesses are configured" in html  # the footer tells the truth
    finally:
        s.close()
