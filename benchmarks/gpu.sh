#!/usr/bin/env bash
# The GPU check in one script (target: under 9 minutes on one H100-class GPU):
#   the gpu profile of `train --all`, its export, and the inference benchmark with the CUDA provider.
# Usage: benchmarks/gpu.sh [OUTDIR]   (default reports/gpu; on the lent device machine pass "$OUT")
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-reports/gpu}
mkdir -p "$OUTDIR"
export PYTHONPATH=. BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
PY=${PY:-python3}
RUNS="$OUTDIR/runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUTDIR/device.csv" || true
start=$(date +%s)
$PY -m mnistserve train --all --profile gpu --device cuda --runs-dir "$RUNS" 2>&1 | tee "$OUTDIR/train.log"
train_s=$(( $(date +%s) - start ))
$PY -m mnistserve export --runs-dir "$RUNS" --out "$OUTDIR/exported" 2>&1 | tee "$OUTDIR/export.log"
$PY benchmarks/inference.py --device cuda --exported "$OUTDIR/exported" --run "$RUNS/latest" --out "$OUTDIR" \
  2>&1 | tee "$OUTDIR/inference.log"
cp "$RUNS/latest/comparison.json" "$RUNS/latest/report.md" "$RUNS/latest/"*.png "$OUTDIR/" 2>/dev/null || true
echo "train --all --profile gpu: ${train_s}s wall; git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  | tee "$OUTDIR/summary.txt"
