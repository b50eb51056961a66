"""Median evidence-packet generation and offline verification time for one deposit (targets ≤ 0.5 s each).

Two configurations: a log without a TSA (PAdES with LT data, one signature) and a log with our TSA over
HTTP on 127.0.0.1 (B-LTA: signature timestamp plus document timestamp, two tokens per packet). The first
packet of a process (font registration, pyHanko's size-estimation token) is excluded as warm-up and
reported separately.

    .venv/bin/python bench/bench_packet.py [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from depository.config import load_config
from depository.deposits import DepositRequest
from depository.log import integrate_all
from depository.packets import build_packet
from depository.wiring import build_services, init_home
from evidence.verify import none_failed, verify_packet
from notary_bridge.tsa_server import ServerThread, create_app, init_tsa_material, load_core


def bench(home: Path, runs: int, tsa_urls: list[str]) -> None:
    config = load_config(home=home, env={}, tsa_urls=tsa_urls or None, run_integrator=False)
    init_home(config)
    s = build_services(config, notary=False)
    tid, _ = s.tenants.create("Bench")
    data = b"bench document\n" * 1000
    deps = s.deposits.create_many(tid, [DepositRequest("contract", hashlib.sha256(data).digest(),
                                                       hashlib.new("sm3", data).digest(), len(data),
                                                       {"title": "bench"}, "bench.txt", "text/plain")])
    assert isinstance(deps, list)
    integrate_all(s.log, 1000)
    t0 = time.perf_counter()
    pdf = build_packet(s, deps, preliminary=True)  # no notary here: the packet is preliminary
    warm = time.perf_counter() - t0
    gen, ver = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        pdf = build_packet(s, deps, preliminary=True)
        gen.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        checks = verify_packet(pdf, file=data)
        ver.append(time.perf_counter() - t0)
        assert none_failed(checks), [c for c in checks if c.failed]  # witnesses/token not present
    label = "with TSA (B-LTA)" if tsa_urls else "without TSA"
    print(f"{label:>18}: generation median {statistics.median(gen):.3f} s (first {warm:.3f} s), "
          f"verification median {statistics.median(ver):.3f} s, {len(pdf):,} bytes, {runs} runs")
    s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as a:
        bench(Path(a), args.runs, [])
    with tempfile.TemporaryDirectory() as b:
        home = Path(b)
        init_tsa_material(home, "Bench")
        with ServerThread(create_app(load_core(home))) as tsa:
            bench(home, args.runs, [tsa.url])


if __name__ == "__main__":
    main()
