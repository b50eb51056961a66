"""Large upload benchmark (issue 3): a 100 MiB file streamed through `POST /v1/deposits` (multipart),
hashed with SHA-256 and SM3 in one pass while it is spooled to disk. Reports throughput and the peak RSS
(VmHWM) of the gunicorn worker processes, to show memory stays flat.

    python bench/bench_upload.py [--mib 100]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.procs import Proc, cli_env, free_port, run_cli

CHUNK = 1 << 20


def worker_hwm_kib(server_pid: int) -> dict[int, int]:
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if ppid == server_pid or int(pid) == server_pid:
            out[int(pid)] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    env = cli_env(tmp / "home", max_upload_bytes=str((args.mib + 1) << 20))
    run_cli(["init"], env)
    key = json.loads(run_cli(["tenant", "create", "Uploader"], env).stdout)["api_key"]
    port = free_port()
    server = Proc(["serve", "--port", str(port), "--workers", "1", "--threads", "2"], env, tmp / "serve.log")
    server.wait_http(f"http://127.0.0.1:{port}/healthz")
    before = worker_hwm_kib(server.p.pid)
    block = os.urandom(CHUNK)
    boundary = "benchboundary7f3a"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nother\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = args.mib * CHUNK
    sha = hashlib.sha256()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t = time.monotonic()
    c.putrequest("POST", "/v1/deposits")
    c.putheader("Authorization", f"Bearer {key}")
    c.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    c.putheader("Content-Length", str(len(head) + size + len(tail)))
    c.endheaders()
    c.send(head)
    for _ in range(args.mib):
        c.send(block)
        sha.update(block)
    c.send(tail)
    resp = c.getresponse()
    body = json.loads(resp.read())
    elapsed = time.monotonic() - t
    after = worker_hwm_kib(server.p.pid)
    server.stop()
    assert resp.status == 201 and body["sha256"] == sha.hexdigest() and body["size"] == size, body
    print(json.dumps({"mib": args.mib, "seconds": round(elapsed, 2), "mb_per_s": round(size / 1e6 / elapsed, 1),
                      "worker_peak_rss_mib_before": round(max(before.values()) / 1024, 1),
                      "worker_peak_rss_mib_after": round(max(after.values()) / 1024, 1)}))


if __name__ == "__main__":
    main()
