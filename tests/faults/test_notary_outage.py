"""Witness and TSA outages under load, with every party a real process (`depository witness serve` ×3,
policy 2 of 3; `depository tsa serve`; `depository serve`). tests/integration/test_notary.py covers
the same outages in-process without load; here the parties are SIGKILLed while deposits stream in:
intake never waits for them, /healthz says degraded (503), and when they are back on their ports the
notary catches up by itself (quorum on the latest checkpoint, a token on every checkpoint)."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.faults.harness import Load, tenant_key, verify_after_fault, wait_port, wait_until
from tests.procs import Proc, cli_env, free_port, run_cli


def _health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_witness_and_tsa_outage_under_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="100", log_origin="outage.example/log")
    log_vkey = json.loads(run_cli(["init"], env).stdout)["log_vkey"]
    tsa_port = free_port()
    wports = {name: free_port() for name in ("w1", "w2", "w3")}
    parties: dict[str, Proc] = {}

    def start_witness(name: str) -> None:
        parties[name] = Proc(["witness", "serve", "--home", str(tmp_path / name), "--name", f"{name}.example/w",
                              "--port", str(wports[name]), "--log", log_vkey], env, tmp_path / f"{name}.log")
        wait_port(wports[name])

    def start_tsa() -> None:
        parties["tsa"] = Proc(["tsa", "serve", "--port", str(tsa_port)], env, tmp_path / "tsa.log")
        wait_port(tsa_port)

    server = None
    load: Load | None = None
    engine = None
    try:
        start_tsa()
        for name in wports:
            start_witness(name)
        policy = [f"log {log_vkey}"]
        policy += [f"witness {n} {(tmp_path / n / 'witness.vkey').read_text().strip()} http://127.0.0.1:{p}"
                   for n, p in wports.items()]
        policy += ["group g 2 w1 w2 w3", "quorum g"]
        (tmp_path / "policy.txt").write_text("\n".join(policy) + "\n")
        env.update({"DEPOSITORY_WITNESS_POLICY_FILE": str(tmp_path / "policy.txt"),
                    "DEPOSITORY_TSA_URLS": f"http://127.0.0.1:{tsa_port}", "DEPOSITORY_NOTARY_RETRY_MAX_S": "1"})
        key = tenant_key(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = Proc(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log")
        server.wait_http(url + "/healthz")
        engine = create_engine(f"sqlite:///{home / 'depository.db'}")

        def latest() -> tuple[int, bool, int]:
            """(latest size, is it witnessed, checkpoints without a token)."""
            with engine.connect() as conn:
                r = conn.execute(text("SELECT size, witnessed FROM checkpoints ORDER BY size DESC LIMIT 1")).one()
                untimestamped = conn.execute(text("SELECT count(*) FROM checkpoints WHERE NOT timestamped")).scalar()
            return int(r.size), bool(r.witnessed), int(untimestamped)

        def notarised() -> tuple[int, int]:
            """(largest witnessed size, largest timestamped size)."""
            with engine.connect() as conn:
                w = conn.execute(text("SELECT max(size) FROM checkpoints WHERE witnessed")).scalar() or 0
                t = conn.execute(text("SELECT max(size) FROM checkpoints WHERE timestamped")).scalar() or 0
            return int(w), int(t)

        load = Load([url], key, batch=100, threads=2).start()
        load.wait_for(300)
        wait_until(lambda: min(notarised()) > 0, 30, "quorum and tokens before the outage")

        for name in ("tsa", "w2", "w3"):
            victim = parties.pop(name)
            victim.kill(signal.SIGKILL)
            victim.stop()  # closes its log file
        errors = len(load.errors)
        acked = load.count()
        time.sleep(1.0)  # work in flight when they died finishes
        stuck = notarised()
        load.wait_for(acked + 600, timeout_s=30)  # intake does not wait for witnesses or the TSA
        assert len(load.errors) == errors, load.errors[errors:][:3]
        size, witnessed, untimestamped = latest()
        assert notarised() == stuck and size > max(stuck), (notarised(), stuck, size)
        assert not witnessed and untimestamped > 0
        status, report = _health(url)
        assert status == 503 and report["checks"]["tsa"]["status"] == "degraded", report
        assert report["checks"]["witnesses"]["members"]["w2"]["status"] == "error", report

        start_witness("w2")
        start_tsa()
        start_witness("w3")
        load.wait_for(load.count() + 300, timeout_s=30)
        load.stop()
        final = latest()[0]
        wait_until(lambda: latest()[1] and latest()[2] == 0, 45, "quorum on the latest and a token on every one")
        print(f"outage: {load.count() - acked} deposits acknowledged while the TSA and 2 of 3 witnesses were "
              f"down (0 errors); caught up to size {final}, every checkpoint stamped")
        verify_after_fault(env, load.acked, "witness and TSA outage")
    finally:
        if load is not None:
            load.stop()
        if engine is not None:
            engine.dispose()
        if server is not None:
            server.stop()
        for p in parties.values():
            p.stop()
