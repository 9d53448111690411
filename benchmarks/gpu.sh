#!/usr/bin/env bash
# The GPU check in one call (goal: all five trained, exported and benchmarked in <= 6 minutes on one H100-class GPU):
#   the gpu profile of every architecture, its export (all five where onnxruntime has a CUDA provider), inference
#   with --device cuda, the batched detector against torchvision's path, then (after the timed core) whether
#   torch.compile pays per model. Measured pieces so far: reports/gpu/README.md (an H100, before the batched detector).
# Usage: benchmarks/gpu.sh [OUTDIR]   (default reports/gpu; on a lent device machine pass a scratch folder)
# Each step has its own time limit, so a slow step still leaves the others' results and the logs behind.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-reports/gpu}
mkdir -p "$OUTDIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
PY=${PY:-python3}
RUNS="$OUTDIR/runs"
MODELS=${GPU_MODELS:-"cnn vit alexnet vgg16 faster_rcnn"}
# A dry run on a machine without a GPU (the limits are sized for a GPU, so give the CPU more):
#   GPU_DEVICE=cpu GPU_PROFILE=smoke GPU_TRAIN_LIMIT=900 GPU_EXPORT_LIMIT=600 GPU_DETECTOR_LIMIT=600 \
#   GPU_COMPILE_LIMIT=900 PY=.venv/bin/python benchmarks/gpu.sh /tmp/gpu
DEVICE=${GPU_DEVICE:-cuda} PROFILE=${GPU_PROFILE:-gpu}
# VGG16 at 224 px is exported only where onnxruntime has a CUDA provider: checking it on the full test split on
# the CPU costs minutes. GPU_EXPORT_MODELS overrides the choice.
# onnxruntime-gpu lists its CUDA provider even on a machine without a GPU: the device decides first.
if [ "$DEVICE" != cpu ] && $PY -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' 2>/dev/null
then EXPORT_MODELS=${GPU_EXPORT_MODELS:-$MODELS}
else EXPORT_MODELS=${GPU_EXPORT_MODELS:-"cnn vit alexnet faster_rcnn"}
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi (a CPU dry run?)"
  $PY -c 'import torch, torchvision, onnxruntime as o; print("torch", torch.__version__, "cuda", torch.version.cuda,
"torchvision", torchvision.__version__, "onnxruntime", o.__version__, o.get_available_providers())'
  nproc; git rev-parse HEAD 2>/dev/null || echo "git revision: see the committing commit"
} 2>&1 | tee "$OUTDIR/device.txt"

step() {  # step NAME SECONDS CMD... : run with a limit (SIGINT, so the CLI stops cleanly), log, time it
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout -s INT -k 15 "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "$name: rc=$rc, $(( $(date +%s) - t0 ))s wall (limit ${limit}s)" | tee -a "$OUTDIR/summary.txt"
}

: > "$OUTDIR/summary.txt"
T0=$(date +%s)
step train "${GPU_TRAIN_LIMIT:-330}" $PY -m mnistserve train --profile "$PROFILE" --device "$DEVICE" --runs-dir "$RUNS" \
  $(printf -- '-m %s ' $MODELS)
step export "${GPU_EXPORT_LIMIT:-90}" $PY -m mnistserve export --runs-dir "$RUNS" --out "$OUTDIR/exported" \
  $(printf -- '-m %s ' $EXPORT_MODELS)
step inference "${GPU_INFERENCE_LIMIT:-45}" $PY -m benchmarks.inference --device "$DEVICE" --repeats 20 \
  --exported "$OUTDIR/exported" --run "$RUNS/latest" --out "$OUTDIR"
step detector "${GPU_DETECTOR_LIMIT:-60}" $PY -m benchmarks.detector_speed --profile "$PROFILE" --device "$DEVICE" \
  --run "$RUNS/latest" --out "$OUTDIR"
echo "core (train, export, inference, detector): $(( $(date +%s) - T0 ))s wall" | tee -a "$OUTDIR/summary.txt"
# Outside the timed core: compiling every model costs minutes of its own.
[ "${GPU_COMPILE:-1}" = 1 ] && step compile "${GPU_COMPILE_LIMIT:-240}" $PY -m benchmarks.compile_gain \
  --profile "$PROFILE" --device "$DEVICE" --models $MODELS --out "$OUTDIR"
# What is worth keeping (no checkpoints, no ONNX files) next to the logs.
cp "$RUNS"/latest/comparison.json "$RUNS"/latest/report.md "$RUNS"/latest/*.png "$OUTDIR/" 2>/dev/null
cp "$OUTDIR/exported/manifest.json" "$OUTDIR/manifest.json" 2>/dev/null
for f in "$RUNS"/*/*/result.json; do [ -f "$f" ] && cp "$f" "$OUTDIR/result-$(basename "$(dirname "$f")").json"; done
echo "done: $(date -u +%FT%TZ)" | tee -a "$OUTDIR/summary.txt"
