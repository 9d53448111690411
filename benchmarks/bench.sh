#!/usr/bin/env bash
# `make bench`: the CPU benchmarks in one go (under 10 minutes on 2 cores), then reports/bench.md.
# Each writes its own report under reports/bench/; the full-size runs (benchmarks/README.md) go elsewhere.
# Needs a trained run in runs/latest and its export in exported/ (make train) for the inference benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENTOML_DO_NOT_TRACK=true
PY=${PY:-.venv/bin/python}
OUT=reports/bench
start=$(date +%s)
$PY -m benchmarks.train_speed --model cnn --epochs 2 --out $OUT
if [ -e runs/latest/comparison.json ]; then
  $PY -m benchmarks.inference --device cpu --repeats 20 --out $OUT
else
  echo "bench: no runs/latest (train first): the inference benchmark needs the checkpoints" >&2
fi
$PY -m benchmarks.throughput --quick --exported exported --out $OUT || echo "bench: failed requests (see report)" >&2
{
  echo "# mnistserve benchmarks (CPU)"
  echo
  echo "Made by \`make bench\` ($(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
       "$(( $(date +%s) - start )) s wall)."
  for f in $OUT/cnn.md $OUT/inference-cpu.md $OUT/serving.md; do
    [ -f "$f" ] && { echo; sed 's/^# /## /' "$f"; }
  done
} > reports/bench.md
echo "wrote reports/bench.md"
