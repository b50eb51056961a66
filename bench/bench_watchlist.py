"""Watch-list throughput: 1,000 watched URLs served on 127.0.0.1, checked by 2 workers (issue 6: <= 60 s).

Set-up: a fresh home (SQLite), one tenant with `--works` registered works (images and texts, fingerprinted
through `Monitoring.register_work` as an upload would be), and a local site of `--urls` pages. Each page
has ~300 words of text and one picture of its own URL; `--copies` pages show a recompressed copy of a
registered work (so captures are deposited and alerts raised during the run), the rest unrelated pictures.

Modes:
    inprocess  the scheduler thread plus the in-process pool of `monitor_workers` = 2 threads (no Redis)
    rq         the scheduler enqueues rq jobs on Redis (DEPOSITORY_TEST_REDIS_URL); 2 `rq` SimpleWorker
               processes (`depository.monitoring.jobs.run_worker`) run them

Timing runs from the first scheduler tick until every watch has run once. Results go to
bench/results/watchlist.md with `--write`.

    .venv/bin/python bench/bench_watchlist.py --mode inprocess --write
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depository.config import load_config  # noqa: E402
from depository.monitoring.models import AlertRow, FetchRow, WatchRow  # noqa: E402
from depository.wiring import build_services, init_home  # noqa: E402

WORDS = [f"w{i}" for i in range(3000)]


def image(seed: int, size: tuple[int, int] = (400, 300), fmt: str = "PNG", quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB").resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()


def text(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        ctype, body = self.routes.get(self.path, ("text/plain", b"not found"))
        self.send_response(200 if self.path in self.routes else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("inprocess", "rq"), default="inprocess")
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--works", type=int, default=200)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    pool = [image(10_000 + i, fmt="JPEG", quality=80) for i in range(50)]
    works = [image(i) for i in range(args.works // 2)]
    copies = set(random.Random(1).sample(range(args.urls), args.copies))
    routes: dict[str, tuple[str, bytes]] = {"/robots.txt": ("text/plain", b"User-agent: *\nAllow: /\n")}
    for i in range(args.urls):
        if i in copies:
            src = Image.open(io.BytesIO(works[i % len(works)])).convert("RGB").resize((300, 225))
            out = io.BytesIO()
            src.save(out, "JPEG", quality=70)
            img = out.getvalue()
        else:
            img = pool[i % len(pool)]
        routes[f"/img/{i}.jpg"] = ("image/jpeg", img)
        html = (f"<!doctype html><html><head><title>page {i}</title></head><body><h1>Page {i}</h1>"
                f"<p>{text(50_000 + i)}</p><img src='/img/{i}.jpg'></body></html>")
        routes[f"/page/{i}"] = ("text/html; charset=utf-8", html.encode())
    Handler.routes = routes

    redis_url = os.environ.get("DEPOSITORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings: dict[str, Any] = dict(fetch_allow_cidrs=["127.0.0.0/8"], watch_min_interval_s=1, monitor_tick_ms=100,
                                        monitor_workers=2, log_origin="bench.example/log")
        if args.mode == "rq":
            settings["redis_url"] = redis_url
            from redis import Redis

            Redis.from_url(redis_url).flushdb()
        home.mkdir(parents=True)
        (home / "config.toml").write_text("".join(
            f"{k} = {v!r}\n".replace("'", '"') if not isinstance(v, list) else f'{k} = ["127.0.0.0/8"]\n'
            for k, v in settings.items()))
        config = load_config(env={}, home=home)
        init_home(config)
        s = build_services(config, notary=False)
        m = s.monitoring
        tid, _ = s.tenants.create("Bench Rights")
        t0 = time.perf_counter()
        for i, w in enumerate(works):
            m.register_work(tid, f"dep_work_img_{i}", w, "image/png", f"w{i}.png")
        for i in range(args.works - len(works)):
            m.register_work(tid, f"dep_work_txt_{i}", text(i).encode(), "text/plain", f"t{i}.txt")
        register_s = time.perf_counter() - t0
        for i in range(args.urls):
            m.watches.create(tid, f"{base}/page/{i}", 3600)
        workers: list[subprocess.Popen[bytes]] = []
        if args.mode == "rq":
            code = ("from depository.config import load_config; from depository.monitoring.jobs import run_worker; "
                    f"run_worker(load_config(env={{}}, home={str(home)!r}), burst=False)")
            env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOSITORY_")}
            workers = [subprocess.Popen([sys.executable, "-c", code], cwd=str(REPO), env=env) for _ in range(2)]
            time.sleep(2.0)  # workers import and connect before the clock starts
        started = time.perf_counter()
        s.start_background()
        try:
            while True:
                with s.engine.connect() as conn:
                    pending = conn.execute(select(func.count()).select_from(WatchRow)
                                           .where(WatchRow.runs == 0)).scalar()
                if pending == 0:
                    break
                if time.perf_counter() - started > 600:
                    raise SystemExit("watch list did not finish in 600 s")
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
        finally:
            s.stop_background()
            for w in workers:
                w.terminate()
                w.wait(10)
        with s.engine.connect() as conn:
            fetches = conn.execute(select(func.count()).select_from(FetchRow)).scalar()
            failed = conn.execute(select(func.count()).select_from(FetchRow).where(FetchRow.ok.is_(False))).scalar()
            alerts = conn.execute(select(func.count()).select_from(AlertRow)).scalar()
        s.close()
    server.shutdown()
    server.server_close()
    mode = ("in-process: scheduler thread + 2 worker threads (no Redis)" if args.mode == "inprocess"
            else "rq: scheduler enqueues jobs on Redis, 2 rq SimpleWorker processes")
    lines = [
        f"## Watch list of {args.urls:,} URLs on 127.0.0.1 -- {mode}",
        "",
        f"- registered works: {args.works} ({len(works)} images, {args.works - len(works)} texts); "
        f"fingerprinting them took {register_s:.1f} s",
        f"- pages: ~300 words and one picture each; {args.copies} show a recompressed copy of a work",
        f"- **all {args.urls:,} watches checked in {elapsed:.1f} s** ({args.urls / elapsed:.0f} pages/s; "
        "target <= 60 s)",
        f"- fetches recorded: {fetches:,} (page + picture per URL, robots.txt cached), failed: {failed}",
        f"- alerts raised (each with a WARC capture deposited): {alerts} (expected {args.copies})",
        f"- machine: {os.cpu_count()} CPUs, SQLite database, Python {sys.version.split()[0]}",
        "",
    ]
    print("\n".join(lines))
    if args.write:
        out = REPO / "bench" / "results" / "watchlist.md"
        existing = out.read_text() if out.exists() else "# Watch-list benchmark (bench/bench_watchlist.py)\n\n"
        marker = f"## Watch list of {args.urls:,} URLs on 127.0.0.1 -- {mode}"
        if marker in existing:
            head, _, rest = existing.partition(marker)
            nxt = rest.find("\n## ")
            existing = head + (rest[nxt + 1:] if nxt >= 0 else "")
        out.write_text(existing.rstrip("\n") + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
