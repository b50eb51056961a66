"""`depository demo --once` on a fresh directory: the SPEC's files, a packet that verifies, and outside tools
(OpenSSL, pdfsig) that agree."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from evidence.checkpoint import SignedCheckpoint
from evidence.policy import Policy
from tests.procs import cli_env, run_cli


def test_demo_once_writes_everything_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = cli_env(tmp_path / "unused-home")
    res = run_cli(["demo", "--out", str(out), "--once"], env, timeout=300)
    assert "ALL CHECKS PASSED" in res.stdout
    for name in ("lease-agreement.pdf", "invoice.pdf", "copyright-work.png", "packet.pdf", "proof.json",
                 "trust/log.vkey", "trust/log-sm2.pem", "trust/witness-policy.txt", "trust/tsa-ca.pem",
                 "trust/packet-ca.pem"):
        assert (out / name).is_file(), name
    proof = json.loads((out / "proof.json").read_text())
    policy = Policy.from_text((out / "trust/witness-policy.txt").read_text())
    assert len(policy.witnesses) == 3
    signed = SignedCheckpoint.from_text(proof["checkpoint"])
    # Policy names (court, notary-a, notary-b) differ from the witnesses' key names: matching must use keys.
    assert {w.name for w in policy.witnesses} == {"court", "notary-a", "notary-b"}
    cosigners = {s.name for s in signed.signatures} - {signed.checkpoint.origin}
    assert len(cosigners) >= 2
    # OpenSSL checks the token over the checkpoint body with the TSA root only.
    (tmp_path / "body.txt").write_text(signed.body, encoding="utf-8")
    (tmp_path / "token.tsr").write_bytes(base64.b64decode(proof["timestamp_token"]))
    ts = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "body.txt"), "-in",
                         str(tmp_path / "token.tsr"), "-token_in", "-CAfile", str(out / "trust/tsa-ca.pem")],
                        capture_output=True, text=True, check=False)
    assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stderr
    pdf = subprocess.run(["pdfsig", str(out / "packet.pdf")], capture_output=True, text=True, check=False)
    assert "Signature is Valid" in pdf.stdout and "Total document signed" in pdf.stdout, pdf.stdout
    # and our own verifier from the command line, against the trust directory
    ver = run_cli(["verify", str(out / "packet.pdf"), "--file", str(out / "lease-agreement.pdf"),
                   "--trust", str(out / "trust"), "--json"], env)
    assert json.loads(ver.stdout)["ok"] is True
