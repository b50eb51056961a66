"""Key rotation without breaking old evidence: evidence made before and after `depository keys rotate
tsa|packet|master`, all of it verified with the project's verifier (`depository verify`, `depository
audit`), OpenSSL (`openssl ts -verify`) and poppler's pdfsig; the retired keys published with their
validity in `GET /v1/log/keys`.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depository.app import create_app
from depository.config import load_config
from depository.deposits import DepositRequest
from depository.log import integrate_all
from depository.packets import build_packet, stored_original
from depository.wiring import Services, build_services, init_home
from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
from notary_bridge.tsa_server import create_app as tsa_app
from tests.conftest import auth
from tests.procs import cli_env, run_cli

ORIGIN = "rotation.test/log"


class Home:
    """A home, its TSA server (restartable: it loads its key at start) and the services over both."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.home = root / "home"
        self.db_url = db_url
        init_tsa_material(self.home, "Rotation Test")
        self.tsa: ServerThread | None = None
        self.s: Services | None = None
        self.start()
        init_home(self._config())

    def _config(self) -> Any:
        assert self.tsa is not None
        return load_config(home=self.home, env={}, database_url=self.db_url, tsa_urls=[self.tsa.url],
                           run_integrator=False, log_origin=ORIGIN)

    def start(self) -> None:
        self.tsa = ServerThread(tsa_app(load_core(self.home))).start()

    def services(self) -> Services:
        if self.s is None:
            self.s = build_services(self._config())
        return self.s

    def restart(self) -> None:
        """What the operator does after a rotation: restart the TSA and the depository."""
        self.close()
        self.start()

    def close(self) -> None:
        if self.s is not None:
            self.s.close()
            self.s = None
        if self.tsa is not None:
            self.tsa.stop()
            self.tsa = None

    def cli_env(self) -> dict[str, str]:
        assert self.tsa is not None
        return cli_env(self.home, database_url=self.db_url, tsa_urls=self.tsa.url, log_origin=ORIGIN)


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Iterator[Home]:
    home = Home(tmp_path, db_url)
    try:
        yield home
    finally:
        home.close()


def _evidence(s: Services, tid: str, tag: bytes) -> dict[str, Any]:
    """A deposit, its checkpoint (stamped by the TSA) and its packet."""
    (d,) = s.deposits.create_many(tid, [DepositRequest("other", hashlib.sha256(tag).digest(),
                                                       hashlib.new("sm3", tag).digest(), len(tag), {}, None, None)])
    integrate_all(s.log, 1000)
    assert s.notary is not None and s.notary.sweep()["timestamped"] >= 1
    cp = s.log.latest_checkpoint()
    token, _ = s.notary.timestamp_for(cp)
    assert token is not None
    return {"deposit": d, "body": cp.body, "token": token, "packet": build_packet(s, [d], preliminary=True)}


def _openssl(tmp: Path, body: str, token: bytes, ca: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "body.txt").write_text(body, encoding="utf-8")
    (tmp / "token.tsr").write_bytes(token)
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp / "body.txt"), "-in", str(tmp / "token.tsr"),
                           "-token_in", "-CAfile", str(ca)], capture_output=True, text=True, timeout=30)


def _pdfsig_ok(path: Path) -> None:
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60).stdout
    blocks = report.split("Signature #")[1:]
    assert len(blocks) == 2, report
    assert "Signature Validation: Signature is Valid." in blocks[0], report  # pdfsig exits 0 on a bad digest
    assert "Total document signed" in blocks[-1], report


def _verify(h: Home, packet: bytes, trust: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    p = tmp / "p.pdf"
    p.write_bytes(packet)
    return run_cli(["verify", str(p), "--trust", str(trust), "--json"], h.cli_env(), check=False)


def test_rotate_tsa_and_packet_old_and_new_evidence_verify(h: Home, tmp_path: Path) -> None:
    s = h.services()
    tid, key = s.tenants.create("Rotation Tenant")
    before = _evidence(s, tid, b"made before the rotation")
    ca_before = (h.home / "tsa" / "tsa-ca.pem").read_bytes()
    packet_root_before = (h.home / "packet" / "packet-ca.pem").read_bytes()
    keys_before = create_app(s.config, s).test_client().get("/v1/log/keys").json

    out = {r: json.loads(run_cli(["keys", "rotate", r], h.cli_env()).stdout) for r in ("tsa", "packet")}
    assert out["tsa"]["retired"] != out["tsa"]["new"] and out["packet"]["retired"] != out["packet"]["new"]
    assert stat.S_IMODE((h.home / "tsa" / "tsa-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((h.home / "packet" / "signer-key.pem").stat().st_mode) == 0o600
    h.restart()
    s = h.services()
    after = _evidence(s, tid, b"made after the rotation")

    # Every old and new token: OpenSSL with the TSA root bundle; the old one needs the old root.
    bundle = h.home / "tsa" / "tsa-ca.pem"
    assert bundle.read_bytes().endswith(ca_before)
    for ev in (before, after):
        r = _openssl(tmp_path, ev["body"], ev["token"], bundle)
        assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr
    new_root = tmp_path / "new-root.pem"
    new_root.write_bytes(bundle.read_bytes()[: -len(ca_before)])
    assert _openssl(tmp_path, before["body"], before["token"], new_root).returncode != 0
    assert _openssl(tmp_path, after["body"], after["token"], new_root).returncode == 0

    # Both packets: pdfsig, and `depository verify` against a trust directory with every root.
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "log.vkey").write_text(s.keys.vkey + "\n")
    (trust / "log-sm2.pem").write_text(s.keys.sm2_public_pem)
    (trust / "tsa-ca.pem").write_bytes(bundle.read_bytes())
    (trust / "packet-ca.pem").write_bytes((h.home / "packet" / "packet-ca-all.pem").read_bytes())
    assert (trust / "packet-ca.pem").read_bytes().endswith(packet_root_before)
    for ev in (before, after):
        (tmp_path / "p.pdf").write_bytes(ev["packet"])
        _pdfsig_ok(tmp_path / "p.pdf")
        r = _verify(h, ev["packet"], trust, tmp_path)
        assert r.returncode == 3, r.stdout + r.stderr
    # With only the new packet root, the old packet's signer is not trusted (the check is real).
    (trust / "packet-ca.pem").write_bytes((h.home / "packet" / "packet-ca.pem").read_bytes())
    assert _verify(h, before["packet"], trust, tmp_path).returncode == 1
    assert _verify(h, after["packet"], trust, tmp_path).returncode == 3

    # The old checkpoints' tokens still pass the audit; the keys endpoint lists both generations.
    assert run_cli(["audit"], h.cli_env()).returncode == 0
    published = create_app(s.config, s).test_client().get("/v1/log/keys").json
    hist = {e["role"]: e for e in published["key_history"]}
    assert set(hist) == {"tsa", "packet"}
    for role in ("tsa", "packet"):
        old = next(k for k in keys_before["current_keys"] if k["role"] == role)
        assert hist[role]["fingerprint"] == old["fingerprint"] and hist[role]["valid_until"]
        assert hist[role]["valid_from"] == old["valid_from"] and hist[role]["certificate_pem"] == old["certificate_pem"]
        now = next(k for k in published["current_keys"] if k["role"] == role)
        assert now["fingerprint"] != old["fingerprint"] and now["valid_until"] is None
    assert hist["packet"]["root_pem"].encode() == packet_root_before
    assert published["tsa_ca_pem"] == bundle.read_text()
    assert published["packet_ca_pem"] != keys_before["packet_ca_pem"]
    assert "PRIVATE" not in json.dumps(published)
    del key


def test_rotate_master_rewraps_content_keys(h: Home) -> None:
    s = h.services()
    wrapped = s.content.new_tenant_key("aes-256-gcm")
    tid, key = s.tenants.create("Keeps Files", store_content=True, wrapped_content_key=wrapped)
    doc = b"confidential lease terms " * 100
    r = create_app(s.config, s).test_client().post(
        "/v1/deposits", headers=auth(key), content_type="multipart/form-data",
        data={"kind": "other", "file": (io.BytesIO(doc), "lease.txt")})
    assert r.status_code == 201
    d = s.deposits.get(tid, r.json["id"])
    old_master = (h.home / "keys" / "master.key").read_bytes()
    h.close()  # intake stopped during the rotation (docs/deploy.md)
    h.start()
    out = json.loads(run_cli(["keys", "rotate", "master"], h.cli_env()).stdout)
    assert out["tenants_rewrapped"] == 1
    new_master = (h.home / "keys" / "master.key").read_bytes()
    retired = Path(out["retired_key"])
    assert new_master != old_master and retired.read_bytes() == old_master
    assert stat.S_IMODE(retired.stat().st_mode) == 0o600 and not (h.home / "keys" / "master.key.new").exists()
    s = h.services()
    assert s.tenants.get(tid).wrapped_content_key != wrapped
    assert stored_original(s, d) == doc  # the stored file, untouched, opens under the re-wrapped key
    assert any(e["role"] == "master" for e in json.loads((h.home / "keys" / "history.json").read_text())["retired"])
    assert not any(e["role"] == "master"
                   for e in create_app(s.config, s).test_client().get("/v1/log/keys").json["key_history"])


def test_rotate_refusals_are_one_line(h: Home) -> None:
    for role, words in (("checkpoint", "new log"), ("witness", "own home"), ("nope", "Invalid value")):
        r = run_cli(["keys", "rotate", role], h.cli_env(), check=False)
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
