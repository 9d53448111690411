#!/usr/bin/env bash
# Re-runs every serving report against the committed exported/ (make serving-reports, ~30 min on 2 cores):
# throughput (the default model; the access log off; 1 and 2 workers), BentoML's floor, both soaks and
# the fuzzing of both serving modes. Each report records the git revision of this checkout and the SHA-256 of
# every model it measured (benchmarks.harness.measured); commit them together with that revision.
# A report whose verdicts are not all met exits 1: keep going, and say which at the end.
source "$(dirname "$0")/steps.sh"
step $PY -m benchmarks.throughput --exported exported --out reports/serving
step $PY -m benchmarks.throughput --exported exported --out reports/serving --concurrency 8 64 \
  --server-env MNISTSERVE_ACCESS_LOG=0 --name serving-no-access-log
# BentoML's workers setting, 1 against 2 worker processes, both free to use the 2 cores (no pinning).
for w in 1 2; do
  step $PY -m benchmarks.throughput --exported exported --out reports/serving --concurrency 8 64 --no-pin \
    --server-env MNISTSERVE_WORKERS=$w --name serving-workers-$w
done
step $PY -m benchmarks.floor --out reports/serving
step $PY -m benchmarks.soak --exported exported --out reports/soak
# Adaptive batching's client path grows native memory for its first ~10k requests, then levels off: measured with
# the default warm-up (as the direct soak) and again after a longer one, both kept.
step $PY -m benchmarks.soak --exported exported --out reports/soak --adaptive-batching 1
step $PY -m benchmarks.soak --exported exported --out reports/soak --adaptive-batching 1 --warmup 10000 \
  --requests 30000 --name soak-batching-1-long
step $PY -m benchmarks.fuzz --exported exported --out reports/fuzz
finish
