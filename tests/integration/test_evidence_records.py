"""RFC 4998 evidence records end to end: the API and CLI on a real home, our TSA over HTTP on 127.0.0.1,
SQLite and PostgreSQL, and every record checked by two verifiers: ours (`evidence.ers.verify_record`) and
Bouncy Castle's `org.bouncycastle.tsp.ers` (tests/java/ErsVerify.java), before and after timestamp renewal
(by a second TSA with another root, as after a TSA key rotation) and hash-tree renewal (SHA-512).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depository.app import create_app
from depository.config import load_config
from depository.evidence_records import EvidenceRecords, evidence_records_for
from depository.packets import stored_original
from depository.wiring import build_services, init_home
from evidence.ers import parse_record, verify_record
from notary_bridge.tsa import HttpTimeStamper
from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
from notary_bridge.tsa_server import create_app as tsa_app
from tests.conftest import auth
from tests.ersjava import bc_verify, compile_verifier
from tests.procs import cli_env, run_cli

DOCS = [f"Lease {i}: the tenant pays 租金 {1000 + i} on the first of each month.\n".encode() * 40 for i in range(5)]


@pytest.fixture(scope="module")
def bc(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_verifier(tmp_path_factory.mktemp("ersjava"))


@pytest.fixture
def tsa2(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A second TSA with its own root: the TSA after a key rotation."""
    home = tmp_path / "tsa2"
    init_tsa_material(home, "Second")
    with ServerThread(tsa_app(load_core(home))) as srv:
        yield {"url": srv.url, "ca": home / "tsa" / "tsa-ca.pem"}


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[dict[str, Any]]:
    home = tmp_path / "home"
    init_tsa_material(home, "ERS Test")
    with ServerThread(tsa_app(load_core(home))) as tsa:
        config = load_config(home=home, env={}, database_url=db_url, tsa_urls=[tsa.url], run_integrator=False,
                             log_origin="ers.test/log")
        init_home(config)
        s = build_services(config, notary=False)
        wrapped = s.content.new_tenant_key("aes-256-gcm")
        tid, key = s.tenants.create("Acme Rentals", store_content=True, wrapped_content_key=wrapped)
        client = create_app(config, s).test_client()
        deps = []
        for i, doc in enumerate(DOCS):
            r = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                            data={"kind": "other", "file": (io.BytesIO(doc), f"lease-{i}.txt")})
            assert r.status_code == 201, r.get_data(as_text=True)
            deps.append(r.json["id"])
        try:
            yield {"s": s, "client": client, "key": key, "tid": tid, "deps": deps, "home": home,
                   "ca": home / "tsa" / "tsa-ca.pem", "config": config}
        finally:
            s.close()


def _check(bc: str, tmp: Path, der: bytes, doc: bytes, *cas: Path) -> None:
    """Both verifiers accept `der` for `doc`, and both refuse it for another document."""
    rec, data, other = tmp / "r.ers", tmp / "doc", tmp / "other"
    rec.write_bytes(der)
    data.write_bytes(doc)
    other.write_bytes(doc + b" (altered)")
    algs = parse_record(der).digest_algorithms
    verify_record(der, {a: hashlib.new(a, doc).digest() for a in algs}, [c.read_bytes() for c in cas])
    ok = bc_verify(bc, rec, data, *cas)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    bad = bc_verify(bc, rec, other, *cas)
    assert bad.returncode == 1 and "not present" in bad.stdout, bad.stdout


def test_api_record_verifies_and_tampering_fails(env: dict[str, Any], bc: str, tmp_path: Path) -> None:
    c, h = env["client"], auth(env["key"])
    d0 = env["deps"][0]
    r = c.get(f"/v1/deposits/{d0}/evidence-record", headers=h)
    assert r.status_code == 200 and r.mimetype == "application/octet-stream"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{d0}.ers"'
    der = r.data
    assert c.get(f"/v1/deposits/{d0}/evidence-record", headers=h).data == der  # stored, not made again
    _check(bc, tmp_path, der, DOCS[0], env["ca"])

    # A flipped bit in the token's signed content, in the tree, or a truncated record: both verifiers refuse.
    rec = parse_record(der)
    ats = rec.last
    assert ats.reduced is None  # made on the spot: a tree of one, the imprint is the content's SHA-256
    token = bytearray(ats.token)
    i = token.find(hashlib.sha256(DOCS[0]).digest())
    token[i] ^= 1
    for bad in (der.replace(ats.token, bytes(token)), der[:-5]):
        (tmp_path / "bad.ers").write_bytes(bad)
        (tmp_path / "doc").write_bytes(DOCS[0])
        out = bc_verify(bc, tmp_path / "bad.ers", tmp_path / "doc", env["ca"])
        assert out.returncode == 1 and out.stdout.startswith("FAIL"), out.stdout
        with pytest.raises(Exception) as ei:
            verify_record(bad, {"sha256": hashlib.sha256(DOCS[0]).digest()}, [env["ca"].read_bytes()])
        assert type(ei.value).__module__ == "evidence.errors"

    # Another tenant's deposit is 404 like a missing one; no key is 401.
    _, other_key = env["s"].tenants.create("Someone Else")
    r = c.get(f"/v1/deposits/{d0}/evidence-record", headers=auth(other_key))
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert c.get(f"/v1/deposits/{d0}/evidence-record").status_code == 401


def test_batch_then_timestamp_and_hash_renewal(env: dict[str, Any], tsa2: dict[str, Any], bc: str,
                                              tmp_path: Path) -> None:
    s = env["s"]
    hash_only = env["client"].post(
        "/v1/deposits", headers=auth(env["key"]),
        json={"kind": "other", "sha256": hashlib.sha256(b"kept elsewhere").hexdigest(),
              "sm3": hashlib.new("sm3", b"kept elsewhere").hexdigest()}).json["id"]
    ers = evidence_records_for(s)
    assert ers.create_missing() == 6 and ers.create_missing() == 0
    recs = {d: parse_record(ers.get(s.deposits.get(env["tid"], d))) for d in env["deps"]}
    assert len({r.last.token for r in recs.values()}) == 1  # one tree, one token for the whole batch
    for d, doc in zip(env["deps"][:3], DOCS[:3], strict=True):  # three leaves: both sides of the tree
        _check(bc, tmp_path, recs[d].to_der(), doc, env["ca"])

    # Timestamp renewal by the rotated TSA: every record whose TSA certificate expires within the window.
    renewer = EvidenceRecords(s.engine, HttpTimeStamper(tsa2["url"], tsa2["ca"].read_bytes()),
                              [tsa2["ca"].read_bytes()], lambda d: stored_original(s, d))
    assert renewer.renew_timestamps(within=dt.timedelta(days=1)) == 0  # nothing expires that soon
    assert renewer.renew_timestamps(within=dt.timedelta(days=365 * 30)) == 6
    for d, doc in zip(env["deps"][:2], DOCS[:2], strict=True):
        der = ers.get(s.deposits.get(env["tid"], d))
        assert [len(c) for c in parse_record(der).chains] == [2]
        _check(bc, tmp_path, der, doc, env["ca"], tsa2["ca"])
        (tmp_path / "r.ers").write_bytes(der)
        only_old = bc_verify(bc, tmp_path / "r.ers", tmp_path / "doc", env["ca"])
        assert only_old.returncode == 1 and "not issued by a given CA" in only_old.stdout

    # Hash-tree renewal with SHA-512: the content is read back from the (encrypted) content store; the
    # hash-only deposit cannot be hashed anew and is reported, its record left as it was.
    report = ers.renew(hash_algorithm="sha512", within=dt.timedelta(days=1))
    assert (report.created, report.timestamp_renewed, report.hash_renewed) == (0, 0, 5)
    assert len(report.skipped) == 1 and report.skipped[0].startswith(hash_only)
    for d, doc in zip(env["deps"][:2], DOCS[:2], strict=True):
        der = ers.get(s.deposits.get(env["tid"], d))
        rec = parse_record(der)
        assert [len(c) for c in rec.chains] == [2, 1] and rec.digest_algorithms == ("sha256", "sha512")
        _check(bc, tmp_path, der, doc, env["ca"], tsa2["ca"])
    # ... and a timestamp renewal on the SHA-512 chain still verifies with both.
    assert ers.renew_timestamps(within=dt.timedelta(days=365 * 30)) == 6
    der = ers.get(s.deposits.get(env["tid"], env["deps"][2]))
    assert [len(c) for c in parse_record(der).chains] == [2, 2]
    _check(bc, tmp_path, der, DOCS[2], env["ca"], tsa2["ca"])


def test_cli_renew_write_and_verify(env: dict[str, Any], bc: str, tmp_path: Path) -> None:
    cfg = env["config"]
    e = cli_env(env["home"], database_url=cfg.effective_database_url, tsa_urls=cfg.tsa_urls[0],
                log_origin=cfg.log_origin)
    out = run_cli(["renew", "--hash", "sha512", "--within-days", "10950"], e)
    assert '"created": 5' in out.stdout and '"hash_renewed": 5' in out.stdout, out.stdout
    rec, doc = tmp_path / "d1.ers", tmp_path / "d1.txt"
    run_cli(["evidence-record", env["deps"][1], "-o", str(rec)], e)
    doc.write_bytes(DOCS[1])
    ok = run_cli(["verify-record", str(rec), "--file", str(doc), "--ca", str(env["ca"])], e)
    assert ok.stdout.startswith("evidence record OK: 3 stamp(s) in 2 chain(s)"), ok.stdout
    assert bc_verify(bc, rec, doc, env["ca"]).returncode == 0
    doc.write_bytes(DOCS[2])
    bad = run_cli(["verify-record", str(rec), "--file", str(doc), "--ca", str(env["ca"])], e, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1
    junk = run_cli(["verify-record", str(doc), "--file", str(doc), "--ca", str(env["ca"])], e, check=False)
    assert junk.returncode == 1 and "EvidenceRecord" in junk.stderr and "Traceback" not in junk.stderr
    bad_hash = run_cli(["renew", "--hash", "md5"], e, check=False)
    assert bad_hash.returncode == 1 and len(bad_hash.stderr.splitlines()) == 1


def test_no_tsa_is_a_problem_not_a_500(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home", env={}, run_integrator=False)
    init_home(config)
    s = build_services(config, notary=False)
    try:
        _, key = s.tenants.create("No TSA")
        c = create_app(config, s).test_client()
        d = c.post("/v1/deposits", headers=auth(key), json={"kind": "other", "sha256": "a" * 64, "sm3": "b" * 64})
        r = c.get(f"/v1/deposits/{d.json['id']}/evidence-record", headers=auth(key))
        assert r.status_code == 409 and r.mimetype == "application/problem+json"
        assert "TSA" in r.json["detail"]
    finally:
        s.close()
