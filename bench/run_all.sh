#!/usr/bin/env bash
# Run every benchmark in sequence on an otherwise idle machine; results land in bench/results/.
# (The fingerprint, watch-list, mixed and scale benchmarks are long; run them on their own, see
# docs/benchmarks.md.)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=bench/results/run-$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "# $(date -u) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY bench/bench_merkle.py
  $PY bench/bench_intake.py --backend sqlite --mode batch --seconds 60 --batch 5000 --clients 3
  $PY bench/bench_intake.py --backend postgresql --mode batch --seconds 60 --batch 5000 --clients 3
  $PY bench/bench_intake.py --backend sqlite --mode single --seconds 30 --clients 8 --threads 4
  $PY bench/bench_intake.py --backend postgresql --mode single --seconds 30 --clients 8 --threads 4
  $PY bench/bench_intake.py --backend sqlite --mode file1k --seconds 30 --clients 8 --threads 4
  $PY bench/bench_intake.py --backend sqlite --mode batch --seconds 60 --batch 500 --clients 2 --rate 5000 --notary
  $PY bench/bench_intake.py --backend postgresql --mode batch --seconds 60 --batch 500 --clients 2 --rate 5000 --notary
  $PY bench/bench_upload.py --mib 100
  $PY bench/bench_packet.py
  $PY bench/bench_log.py --leaves 1000000 --proof-leaves 10000000 --backends sqlite,postgresql,pymerkle
} 2>&1 | grep --line-buffered -v 'POST /' | tee "$out"
