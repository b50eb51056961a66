"""Web capture benchmark (issue 20): wall time of one browser capture of a typical page on 127.0.0.1.

    python bench/bench_capture.py [--runs 15]

A "typical page": ~30 KB of HTML text, a script that renders part of it, six images (two lazy-loaded
below the fold), a stylesheet, one redirect before it, one request the guard refuses. Each run is
`capture_browser` end to end (Chromium start, guard, scroll, screenshot, PDF, DOM, HAR) followed by the
WARC and the signed manifest, as a worker does before depositing. Prints p50/p90/max and the per-stage
split of the median run; docs/benchmarks.md records the figures with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from depository.capture.browser import CapturePolicy, capture_browser
from depository.capture.warc import build_capture_warc
from evidence.capture_manifest import artefact_entry, sign_manifest
from tests.browser.test_capture import Server, png


def typical_site() -> Server:
    paras = "".join(f"<p>Paragraph {i}: " + "lorem ipsum dolor sit amet " * 40 + "</p>" for i in range(25))
    imgs = "".join(f'<img src="/img{i}.png" width="120" height="80">' for i in range(4))
    lazy = "".join(f'<img loading="lazy" src="/lazy{i}.png" width="120" height="80">' for i in range(2))
    html = (f'<!doctype html><html><head><title>Typical</title><link rel="stylesheet" href="/s.css"></head><body>'
            f'<h1>Listing</h1>{imgs}<div id="app"></div>{paras}<div style="height:2000px"></div>{lazy}'
            f'<script>document.getElementById("app").textContent = "price 99.50";'
            f'fetch("http://127.0.0.2:9/x").catch(() => 0);</script></body></html>').encode()
    pages = {"/": (302, "text/html", b"", [("Location", "/page")]),
             "/page": (200, "text/html; charset=utf-8", html, []),
             "/s.css": (200, "text/css", b"body{font-family:sans-serif} img{margin:4px}", [])}
    for i in range(4):
        pages[f"/img{i}.png"] = (200, "image/png", png((i * 50, 100, 200)), [])
    for i in range(2):
        pages[f"/lazy{i}.png"] = (200, "image/png", png((200, i * 90, 50)), [])
    return Server("127.0.0.1", pages)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    site = typical_site()
    key = Ed25519PrivateKey.generate()
    policy = CapturePolicy(allow_cidrs=("127.0.0.1/32",))
    runs = []
    try:
        capture_browser(site.base + "/", policy)  # warm the page cache of the Chromium binary
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = capture_browser(site.base + "/", policy)
            t1 = time.perf_counter()
            warc = build_capture_warc(r.exchanges, info={"bench": 1})
            arts = {**r.artefacts, "capture.warc.gz": ("application/warc", warc)}
            sign_manifest({"artefacts": [artefact_entry(n, c, b) for n, (c, b) in arts.items()],
                           "requests": [e.summary() for e in r.exchanges]}, key)
            t2 = time.perf_counter()
            runs.append({"total_s": t2 - t0, "browser_s": t1 - t0, "warc_manifest_s": t2 - t1,
                         "loaded_and_scrolled_ms": r.timing["loaded_and_scrolled_ms"],
                         "requests": len(r.exchanges), "refused": len(r.refused)})
    finally:
        site.close()
    totals = sorted(x["total_s"] for x in runs)
    median = min(runs, key=lambda x: abs(x["total_s"] - statistics.median(totals)))
    print(json.dumps({"runs": len(runs), "p50_s": round(statistics.median(totals), 3),
                      "p90_s": round(totals[int(0.9 * (len(totals) - 1))], 3), "max_s": round(totals[-1], 3),
                      "median_run": {k: round(v, 3) if isinstance(v, float) else v for k, v in median.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
