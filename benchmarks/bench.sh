#!/usr/bin/env bash
# `make bench`: the CPU benchmarks in one go (about 10 minutes on 2 cores), then reports/bench.md.
# Needs a trained run in runs/latest and its export in exported/ (make train) for the inference benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. BENTOML_DO_NOT_TRACK=true
PY=${PY:-.venv/bin/python}
$PY benchmarks/train_speed.py --model cnn --epochs 2 --out reports/train_speed
if [ -e runs/latest/comparison.json ]; then
  $PY benchmarks/inference.py --device cpu --out reports/inference
else
  echo "bench: no runs/latest (train first): the inference benchmark needs the checkpoints" >&2
fi
$PY benchmarks/serving.py --quick --exported exported || echo "bench: serving verdicts not all met (see report)" >&2
{
  echo "# mnistserve benchmarks (CPU)"
  echo
  echo "Made by \`make bench\` ($(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
  for f in reports/train_speed/cnn.md reports/inference/inference-cpu.md reports/serving/serving.md; do
    [ -f "$f" ] && { echo; sed 's/^# /## /' "$f"; }
  done
} > reports/bench.md
echo "wrote reports/bench.md"
