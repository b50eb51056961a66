"""Mixed-workload benchmark (issue 8): what a platform does all day, at once, against real processes.

    python bench/bench_mixed.py --backend sqlite|postgresql [--seconds 600] [--workers 2] [--threads 4]
                                [--batch 1000] [--out bench/results/mixed.md]

Starts, on 127.0.0.1 in a fresh home: our RFC 3161 TSA (`depository tsa serve`) and `depository serve`
(gunicorn, --workers processes; every checkpoint is timestamped by the in-process notary). Then client
threads in this process run, for --seconds:

    batch    1 thread   POST /v1/deposits/batch with --batch hash-only deposits
    single   2 threads  POST /v1/deposits (JSON, hash-only), one at a time
    proof    2 threads  GET /v1/deposits/<id>/proof of a random earlier deposit
    packet   1 thread   GET /v1/deposits/<id>/packet.pdf (signed PAdES packet) of a random earlier deposit

Reports per operation: completed requests, throughput, p50/p99 latency, errors; deposits acknowledged per
second; and the peak RSS of the server (all processes of its group summed, and the largest one), sampled
every second from /proc. The load generator shares the machine's cores with the server, so the figures
are a floor for a machine where clients are elsewhere.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_intake import fresh_pg, pct
from tests.procs import Proc, cli_env, free_port, run_cli


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    deposits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float, deposits: int = 0) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.deposits += deposits

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def group_rss(pgid: int) -> tuple[int, int]:
    """(sum, max) of VmRSS in bytes over the processes of process group `pgid` (from /proc)."""
    total = biggest = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                        total += rss
                        biggest = max(biggest, rss)
        except (OSError, ValueError, IndexError):
            continue
    return total, biggest


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}"}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise


def wait_port(port: int, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def run(backend: str, seconds: float, workers: int, threads: int, batch: int, tmp: Path) -> dict[str, object]:
    home = tmp / "home"
    db = f"sqlite:///{home / 'depository.db'}" if backend == "sqlite" else fresh_pg("dep_bench_mixed")
    tsa_port, port = free_port(), free_port()
    env = cli_env(home, database_url=db, batch_interval_ms="100", tsa_urls=f"http://127.0.0.1:{tsa_port}",
                  log_format="json", access_log="false")
    run_cli(["init"], env)
    key = json.loads(run_cli(["tenant", "create", "Bench Platform"], env).stdout)["api_key"]
    tsa = Proc(["tsa", "serve", "--port", str(tsa_port)], env, tmp / "tsa.log")
    server = Proc(["serve", "--port", str(port), "--workers", str(workers), "--threads", str(threads)], env,
                  tmp / "serve.log")
    try:
        wait_port(tsa_port)
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        ids: list[str] = []
        ids_lock = threading.Lock()
        stats = {name: OpStats() for name in ("batch", "single", "proof", "packet")}
        stop = threading.Event()
        # Seed: some deposits so readers have something proven to ask for from the first second.
        seed = Client(port, key)
        items = [{"kind": "other", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32)} for _ in range(200)]
        status, raw = seed.request("POST", "/v1/deposits/batch", json.dumps({"deposits": items}).encode())
        assert status in (200, 201), raw[:300]
        ids.extend(d["id"] for d in json.loads(raw)["deposits"])
        time.sleep(2.0)  # integrated and stamped

        def batch_loop() -> None:
            c = Client(port, key)
            while not stop.is_set():
                items = [{"kind": "contract", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32),
                          "size": 1000, "metadata": {"parties": [{"name": "Acme Rentals"}, {"name": "A. Tenant"}],
                                                              "matter": f"M-{random.randrange(10**6)}"}}
                         for _ in range(batch)]
                body = json.dumps({"deposits": items}).encode()
                t = time.perf_counter()
                try:
                    status, raw = c.request("POST", "/v1/deposits/batch", body)
                except (OSError, http.client.HTTPException) as e:
                    stats["batch"].error(type(e).__name__)
                    continue
                if status not in (200, 201):
                    stats["batch"].error(str(status))
                    time.sleep(0.2)
                    continue
                stats["batch"].ok(time.perf_counter() - t, batch)
                got = json.loads(raw)["deposits"]
                with ids_lock:
                    ids.extend(d["id"] for d in random.sample(got, 20))

        def single_loop() -> None:
            c = Client(port, key)
            while not stop.is_set():
                body = json.dumps({"kind": "invoice", "sha256": secrets.token_hex(32), "sm3": secrets.token_hex(32),
                                   "size": 2048, "metadata": {"number": f"INV-{random.randrange(10**6)}",
                                                              "issuer": "Acme", "buyer": "Beta",
                                                              "amount": "120.50", "currency": "EUR",
                                                              "date": "2026-01-31"}}).encode()
                t = time.perf_counter()
                try:
                    status, raw = c.request("POST", "/v1/deposits", body)
                except (OSError, http.client.HTTPException) as e:
                    stats["single"].error(type(e).__name__)
                    continue
                if status not in (200, 201):
                    stats["single"].error(str(status))
                    time.sleep(0.2)
                    continue
                stats["single"].ok(time.perf_counter() - t, 1)
                if random.random() < 0.1:
                    with ids_lock:
                        ids.append(json.loads(raw)["id"])

        def reader(kind: str, suffix: str) -> None:
            c = Client(port, key)
            while not stop.is_set():
                with ids_lock:
                    # Old enough to be in a stamped checkpoint: not among the newest 2,000.
                    dep = random.choice(ids[: max(1, len(ids) - 2000)])
                t = time.perf_counter()
                try:
                    status, _ = c.request("GET", f"/v1/deposits/{dep}/{suffix}")
                except (OSError, http.client.HTTPException) as e:
                    stats[kind].error(type(e).__name__)
                    continue
                if status != 200:
                    stats[kind].error(str(status))
                    time.sleep(0.1)
                    continue
                stats[kind].ok(time.perf_counter() - t)

        loops = [threading.Thread(target=batch_loop)]
        loops += [threading.Thread(target=single_loop) for _ in range(2)]
        loops += [threading.Thread(target=reader, args=("proof", "proof")) for _ in range(2)]
        loops += [threading.Thread(target=reader, args=("packet", "packet.pdf"))]
        peak_total = peak_one = 0
        start = time.monotonic()
        for t in loops:
            t.start()
        while time.monotonic() - start < seconds:
            total, one = group_rss(server.p.pid)
            peak_total, peak_one = max(peak_total, total), max(peak_one, one)
            time.sleep(1.0)
        stop.set()
        for t in loops:
            t.join()
        elapsed = time.monotonic() - start
        # Let integration finish, then read the tree size from /metrics.
        time.sleep(3)
        c = Client(port, key)
        _, raw = c.request("GET", "/metrics")
        tree = next(int(line.split()[1]) for line in raw.decode().splitlines()
                    if line.startswith("depository_tree_size "))
        out: dict[str, object] = {"backend": backend, "seconds": round(elapsed, 1), "workers": workers,
                                  "threads": threads, "batch_size": batch, "tree_size_after": tree,
                                  "peak_rss_total_mib": round(peak_total / 2**20, 1),
                                  "peak_rss_largest_mib": round(peak_one / 2**20, 1)}
        deposits = 0
        for name, st in stats.items():
            lat = st.latencies
            deposits += st.deposits
            out[name] = {"requests": len(lat), "per_s": round(len(lat) / elapsed, 2),
                         "p50_ms": round(pct(lat, 0.5) * 1e3, 1), "p99_ms": round(pct(lat, 0.99) * 1e3, 1),
                         "errors": st.errors}
        out["deposits_acknowledged"] = deposits
        out["deposits_per_s"] = round(deposits / elapsed, 1)
        return out
    finally:
        server.stop()
        tsa.stop()


def to_markdown(res: dict[str, object]) -> str:
    rows = [f"### {res['backend']}: {res['seconds']} s, {res['workers']} API processes × {res['threads']} threads, "
            f"batch {res['batch_size']}",
            "",
            "| operation | requests | per s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---|"]
    for name in ("batch", "single", "proof", "packet"):
        st = res[name]
        assert isinstance(st, dict)
        rows.append(f"| {name} | {st['requests']} | {st['per_s']} | {st['p50_ms']} | {st['p99_ms']} | "
                    f"{st['errors'] or '-'} |")
    rows += ["",
             f"Deposits acknowledged: {res['deposits_acknowledged']} ({res['deposits_per_s']}/s); "
             f"tree size afterwards {res['tree_size_after']}. Peak RSS of the server: "
             f"{res['peak_rss_total_mib']} MiB all processes, {res['peak_rss_largest_mib']} MiB the largest.", ""]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--out", type=Path, help="append the result as markdown to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        res = run(args.backend, args.seconds, args.workers, args.threads, args.batch, Path(d))
    print(json.dumps(res), flush=True)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(to_markdown(res) + "\n")


if __name__ == "__main__":
    main()
