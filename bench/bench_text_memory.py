"""Peak memory and time of fingerprinting a big plain-text work or suspect upload (issue 19, point 4).

Each size runs in a fresh child process (so peaks do not mix): it builds a file of real prose (the licence
texts in /usr/share/common-licenses and the READMEs/changelogs under /usr/share/doc, each copy with a
numbered line so shingles are not all repeats), then fingerprints it through
``depository.monitoring.service.fingerprint_work`` from the open file, as the upload hook does. Reported:
the child's RSS after imports, its peak RSS (``ru_maxrss``) and the difference, and wall time.

``--code-root DIR`` runs the same against another checkout (e.g. main before the fix) for a before/after.

    .venv/bin/python bench/bench_text_memory.py --sizes 1,8,100 [--probe] [--code-root /work/main]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import psutil
from depository.monitoring import service
path, probe = sys.argv[2], sys.argv[3] == "1"
base = psutil.Process().memory_info().rss
t0 = time.perf_counter()
with open(path, "rb") as f:
    if hasattr(service, "WorkFingerprints"):
        r = service.fingerprint_work(f, "text/plain", "work.txt", probe=probe)
        n = len(r.fingerprints)
    else:  # the code before issue 19: bytes in
        n = len(service.fingerprint_work(f.read(), "text/plain", "work.txt"))
dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: ru_maxrss survives exec from a big parent (pytest)
peak = next(int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM:"))
print(json.dumps({"base_mib": base / 2**20, "peak_mib": peak / 2**20, "grew_mib": (peak - base) / 2**20,
                  "seconds": dt, "fingerprints": n}))
"""


def prose() -> str:
    parts = []
    for p in sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/README*")):
        try:
            raw = Path(p).read_bytes()
            if p.endswith(".gz"):
                raw = gzip.decompress(raw)
            parts.append(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, EOFError):
            continue
    return "\n".join(parts)


def build(path: str, mib: int, corpus: str) -> None:
    """Copies of the corpus; in copy i every word gets the suffix i, so (nearly) every shingle of the file
    is distinct -- the worst case for memory, as a long original novel would be."""
    target = mib * 1024 * 1024
    with open(path, "w", encoding="utf-8") as f:
        i = 0
        while f.tell() < target:
            f.write(f"\nsection {i}\n")
            f.write(re.sub(r"(\w+)", rf"\g<1>{i:x}", corpus) if i else corpus)
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--probe", action="store_true", help="as a suspect upload (keeps the probe set)")
    ap.add_argument("--code-root", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    corpus = prose()
    print(f"# corpus {len(corpus) / 2**20:.1f} MiB of package prose; code {args.code_root}; probe={args.probe}")
    with tempfile.TemporaryDirectory() as tmp:
        for mib in [int(x) for x in args.sizes.split(",")]:
            path = os.path.join(tmp, f"w{mib}.txt")
            build(path, mib, corpus)
            t0 = time.time()
            try:
                out = subprocess.run([sys.executable, "-c", CHILD, args.code_root, path, "1" if args.probe else "0"],
                                     capture_output=True, text=True, timeout=args.timeout)
                ok = out.returncode == 0
                line = out.stdout.strip().splitlines()[-1] if ok else f"failed rc={out.returncode} {out.stderr[-300:]}"
            except subprocess.TimeoutExpired:
                line = f"timeout after {time.time() - t0:.0f} s"
            try:
                r = json.loads(line)
                print(f"{mib:>5} MB  base {r['base_mib']:.0f} MiB  peak {r['peak_mib']:.0f} MiB  "
                      f"+{r['grew_mib']:.0f} MiB  {r['seconds']:.1f} s  fingerprints={r['fingerprints']}")
            except (json.JSONDecodeError, KeyError, TypeError):
                print(f"{mib:>5} MB  {line}")
            os.unlink(path)


if __name__ == "__main__":
    main()
