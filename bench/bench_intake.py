"""Intake benchmark (issue 3): the batch API through gunicorn, sustained, with integration keeping pace.

    python bench/bench_intake.py --backend sqlite|postgresql [--seconds 60] [--batch 5000] [--clients 3]
                                 [--workers 2] [--mode batch|single|file1k]

Starts `depository serve` (gunicorn, --workers) on 127.0.0.1 in a fresh home, then `--clients` client
threads in this process send pre-built request bodies over keep-alive connections for `--seconds`.
Reports acknowledged deposits/s, request latency p50/p99, and deposit -> checkpoint latency: a sampler reads
the integrated tree size (and, with --notary, the largest checkpoint both witnessed and timestamped) from
the database every 10 ms, and each request's last index is matched with the first sample covering it. Every
acknowledged request counts, not a sample of probes. The load generator shares the 2 cores with the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_log import fresh_pg
from tests.procs import Proc, cli_env, free_port, run_cli


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def batch_body(n: int) -> bytes:
    items = [{"kind": "contract", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32), "size": 1000,
              "metadata": {"parties": [{"name": "Acme Rentals"}, {"name": f"Tenant {i}"}], "matter": f"ORD-{i}"}}
             for i in range(n)]
    return json.dumps({"deposits": items}).encode()


def multipart_1k(boundary: str = "benchb0undary") -> tuple[bytes, str]:
    content = secrets.token_bytes(1024)
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nother\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start_notary(tmp: Path, env: dict[str, str], servers: list[object]) -> dict[str, str]:
    """Our TSA and three witnesses on 127.0.0.1 (threads in this process), a 2-of-3 policy."""
    from notary_bridge.tsa_server import ServerThread, create_app, init_tsa_material, load_core
    from notary_bridge.witness import WitnessHome, load_witness
    from notary_bridge.witness_server import WitnessServerThread
    from notary_bridge.witness_server import create_app as witness_app

    home = Path(env["DEPOSITORY_HOME"])
    vkey = (home / "keys" / "log.vkey").read_text().strip()
    tsa_home = tmp / "tsa"
    init_tsa_material(tsa_home, "Bench TSA")
    tsa = ServerThread(create_app(load_core(tsa_home)))
    tsa.start()
    servers.append(tsa)
    (home / "tsa").mkdir(exist_ok=True)
    (home / "tsa" / "tsa-ca.pem").write_bytes((tsa_home / "tsa" / "tsa-ca.pem").read_bytes())
    lines = [f"log {vkey}"]
    for n in ("w1", "w2", "w3"):
        w = WitnessServerThread(witness_app(load_witness(tmp / n, f"{n}.bench.example", [vkey])))
        w.start()
        servers.append(w)
        lines.append(f"witness {n} {WitnessHome(tmp / n).vkey.read_text().strip()} {w.url}")
    lines += ["group g 2 w1 w2 w3", "quorum g"]
    (home / "policy.txt").write_text("\n".join(lines) + "\n")
    return {"tsa_urls": tsa.url, "witness_policy_file": str(home / "policy.txt")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="batch", choices=["batch", "single", "file1k"])
    ap.add_argument("--rate", type=float, default=0, help="target deposits/s (0: as fast as possible)")
    ap.add_argument("--notary", action="store_true",
                    help="run a TSA and three witnesses (2 of 3) and measure deposit -> witnessed+timestamped")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    settings = {"batch_interval_ms": "100", "batch_max_entries": "50000"}
    if args.backend == "postgresql":
        settings["database_url"] = fresh_pg("dep_bench_intake")
    env = cli_env(tmp / "home", **settings)
    run_cli(["init"], env)
    notary_servers: list[object] = []
    if args.notary:
        settings.update(start_notary(tmp, env, notary_servers))
        env = cli_env(tmp / "home", **settings)
    key = json.loads(run_cli(["tenant", "create", "Bench"], env).stdout)["api_key"]
    port = free_port()
    server = Proc(["serve", "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads)],
                  env, tmp / "serve.log")
    server.wait_http(f"http://127.0.0.1:{port}/healthz")
    headers = {"Authorization": f"Bearer {key}"}
    if args.mode == "batch":
        bodies = [batch_body(args.batch) for _ in range(8)]
        path, ctype, per_req = "/v1/deposits/batch", "application/json", args.batch
    elif args.mode == "single":
        bodies = [json.dumps({"kind": "other", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32)}
                             ).encode() for _ in range(64)]
        path, ctype, per_req = "/v1/deposits", "application/json", 1
    else:
        mp = [multipart_1k() for _ in range(16)]
        bodies = [b for b, _ in mp]
        path, ctype, per_req = "/v1/deposits", mp[0][1], 1

    acks: list[tuple[float, int]] = []  # (ack time, max leaf index)
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    # (time, integrated tree size, size covered by a checkpoint both witnessed (quorum) and timestamped)
    tree: list[tuple[float, int, int]] = []
    db_url = settings.get("database_url") or f"sqlite:///{(tmp / 'home' / 'depository.db').resolve()}"
    per_client_interval = (per_req * args.clients / args.rate) if args.rate else 0.0
    clients_done = threading.Event()

    def sampler() -> None:
        # Sizes come straight from the database, where they are committed with the checkpoint and its
        # cosignatures/token: asking the API would queue the probe behind the requests it is timing.
        from sqlalchemy import create_engine, text

        engine = create_engine(db_url)
        q = text("SELECT (SELECT size FROM log_tree WHERE id = 1), "
                 "(SELECT coalesce(max(size), 0) FROM checkpoints WHERE witnessed AND timestamped)")
        with engine.connect() as c:
            while time.monotonic() < stop + 60:
                size, done = c.execute(q).one()
                c.rollback()
                tree.append((time.monotonic(), int(size), int(done)))
                with lock:
                    last = max((i for _, i in acks), default=-1)
                if clients_done.is_set() and size > last and (not args.notary or done > last):
                    break
                time.sleep(0.01)
        engine.dispose()

    def client(n: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = n
        next_at = time.monotonic()
        while time.monotonic() < stop:
            if per_client_interval:
                next_at += per_client_interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            body = bodies[i % len(bodies)]
            i += 1
            # Bodies repeat: fresh hashes are not needed, each deposit gets its own id and salt.
            t = time.monotonic()
            try:
                c.request("POST", path, body=body, headers={**headers, "Content-Type": ctype})
                resp = c.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed an idle keep-alive connection (gunicorn's keepalive is 2 s): reconnect.
                # Nothing was acknowledged, so resending is safe.
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                t = time.monotonic()
                c.request("POST", path, body=body, headers={**headers, "Content-Type": ctype})
                resp = c.getresponse()
            raw = resp.read()
            t2 = time.monotonic()
            if resp.status != 201:
                errors[0] += 1
                if errors[0] == 1:
                    print(f"first error: {resp.status} {raw[:300]!r}", file=sys.stderr)
                continue
            obj = json.loads(raw)
            idx = max(d["leaf_index"] for d in obj["deposits"]) if "deposits" in obj else obj["leaf_index"]
            with lock:
                lat.append(t2 - t)
                acks.append((t2, idx))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    samp = threading.Thread(target=sampler)
    samp.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t0
    clients_done.set()
    samp.join()
    server.stop()
    for srv in notary_servers:
        srv.stop()  # type: ignore[attr-defined]

    def latencies(column: int) -> tuple[list[float], int]:
        """Per acknowledged request: time from its answer until the sampled size first covered its last index."""
        out, missing = [], 0
        for ack_t, idx in acks:
            k = next((row[0] for row in tree if row[column] > idx and row[0] >= ack_t - 0.01), None)
            if k is None:
                missing += 1
            else:
                out.append(max(0.0, k - ack_t))
        return out, missing

    acks.sort()
    inc, _ = latencies(1)
    witnessed, unwitnessed = latencies(2) if args.notary else ([], 0)
    n = len(acks) * per_req
    print(json.dumps({"backend": args.backend, "mode": args.mode, "workers": args.workers, "clients": args.clients,
                      "batch": per_req, "seconds": round(elapsed, 1), "requests": len(acks), "errors": errors[0],
                      "deposits": n, "deposits_per_s": round(n / elapsed),
                      "request_p50_ms": round(statistics.median(lat) * 1e3, 1) if lat else None,
                      "request_p99_ms": round(pct(lat, 0.99) * 1e3, 1),
                      "to_checkpoint_p50_ms": round(statistics.median(inc) * 1e3) if inc else None,
                      "to_checkpoint_p99_ms": round(pct(inc, 0.99) * 1e3) if inc else None,
                      **({"to_witnessed_and_timestamped_p50_ms": round(statistics.median(witnessed) * 1e3),
                          "to_witnessed_and_timestamped_p99_ms": round(pct(witnessed, 0.99) * 1e3),
                          "requests_never_witnessed": unwitnessed}
                         if args.notary and witnessed else {})}))


if __name__ == "__main__":
    main()
