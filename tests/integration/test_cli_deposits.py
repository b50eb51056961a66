"""The CLI over a real server: tenant keys (create, list, revoke), `deposit FILE|FOLDER`, `get`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.procs import Proc, cli_env, free_port, run_cli


def test_cli_deposit_file_folder_get_and_key_revocation(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", batch_interval_ms="50")
    run_cli(["init"], env)
    created = json.loads(run_cli(["tenant", "create", "Law Firm LLP"], env).stdout)
    assert created["tenant_id"].startswith("t_") and created["api_key"].startswith("dpk_")
    port = free_port()
    with Proc(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        cenv = {**env, "DEPOSITORY_API_KEY": created["api_key"], "DEPOSITORY_SERVER": f"http://127.0.0.1:{port}"}
        doc = tmp_path / "contract.txt"
        doc.write_bytes(b"This agreement is made between A and B.\n")
        out = run_cli(["deposit", str(doc), "--kind", "contract", "--meta", 'parties=[{"name":"A"},{"name":"B"}]',
                       "--matter", "CASE-1", "--wait", "10"], cenv)
        d = json.loads(out.stdout)
        assert d["sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest() and d["matter"] == "CASE-1"
        assert d["status"] != "pending"
        folder = tmp_path / "invoices"
        folder.mkdir()
        for i in range(3):
            (folder / f"inv{i}.txt").write_text(f"invoice {i}\n")
        lines = run_cli(["deposit", str(folder), "--kind", "other"], cenv).stdout.strip().splitlines()
        assert len(lines) == 3 and {json.loads(x)["filename"] for x in lines} == {"inv0.txt", "inv1.txt", "inv2.txt"}
        got = json.loads(run_cli(["get", d["id"]], cenv).stdout)
        assert got["id"] == d["id"]
        bad = run_cli(["deposit", str(doc), "--kind", "invoice"], cenv, check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        keys = [json.loads(x) for x in run_cli(["tenant", "keys", created["tenant_id"]], env).stdout.splitlines()]
        assert len(keys) == 1 and "secret" not in json.dumps(keys) and created["api_key"] not in json.dumps(keys)
        run_cli(["tenant", "revoke-key", keys[0]["key_id"]], env)
        import time

        time.sleep(2.5)  # other processes honour a revocation within the key cache's TTL (2 s)
        denied = run_cli(["get", d["id"]], cenv, check=False)
        assert denied.returncode != 0 and "401" in denied.stderr
        listed = run_cli(["tenant", "list"], env).stdout
        assert "Law Firm LLP" in listed
