"""Checkpoint signing through a PKCS#11 token (SoftHSM2) versus a key file (issue 17).

    python bench/bench_hsm.py [--leaves 1000000] [--batch 100000] [--signs 2000]

Two fresh SQLite homes, one with the log's Ed25519 key in a SoftHSM2 token (`init --pkcs11`), one with
the key file; the same leaves are sequenced in 10,000-entry transactions and integrated in batches of
`--batch` (each batch signs one checkpoint: Ed25519 through the token or the file, plus SM2 from its
file). Integration throughput counts the integrate phase only. Also: raw CKM_EDDSA signatures per second
over a 100-byte note body, through one session.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_log import integrate, sequence
from depository.config import load_config
from depository.hsm import PIN_ENV, TokenRef, init_token_log_key
from depository.wiring import build_services, init_home
from tests.hsm import softhsm_token


def run(home: Path, leaves: int, batch: int) -> dict[str, float]:
    config = load_config(env={}, home=home, log_origin="bench.hsm/log")
    init_home(config)
    s = build_services(config, notary=False)
    try:
        sequence(s.log, 0, leaves)
        secs, n = integrate(s.log, batch)
        return {"integrate_per_s": leaves / secs, "checkpoints": n, "where": getattr(s.keys.ed25519, "where", "file")}
    finally:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--signs", type=int, default=2000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        hsm = softhsm_token(tmp / "softhsm", "bench")
        os.environ[PIN_ENV] = hsm.pin
        signer = init_token_log_key(tmp / "hsm" / "keys", "bench.hsm/log", TokenRef(hsm.module, hsm.label), hsm.pin)
        body = b"bench.hsm/log\n1000000\n" + b"A" * 44 + b"\n" + b"x" * 30
        t = time.perf_counter()
        for _ in range(a.signs):
            signer.sign(body)
        signs_per_s = a.signs / (time.perf_counter() - t)
        token = run(tmp / "hsm", a.leaves, a.batch)
        file_ = run(tmp / "file", a.leaves, a.batch)
    print(json.dumps({"leaves": a.leaves, "batch": a.batch, "eddsa_signs_per_s": round(signs_per_s),
                      "token": token, "file": file_}, indent=2))


if __name__ == "__main__":
    main()
