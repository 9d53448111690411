#!/usr/bin/env bash
# The GPU check in one script (target: under 9 minutes on one H100-class GPU; reports/gpu/README.md has the pieces
# measured on an H100: ~240 s wall for cnn/vit/alexnet/vgg16, 201 s for Faster R-CNN's one epoch, export 38 s,
# inference 23 s; not yet run in one go at these settings):
#   the gpu profile of every architecture, its export, and the inference benchmark on the GPU.
# Usage: benchmarks/gpu.sh [OUTDIR]   (default reports/gpu; on a lent device machine pass a scratch folder)
# Each step has its own time limit, so a slow step still leaves the others' results and the logs behind.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-reports/gpu}
mkdir -p "$OUTDIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
PY=${PY:-python3}
RUNS="$OUTDIR/runs"
# Faster R-CNN last: its per-image Python work makes it the slowest and least predictable on a GPU.
MODELS=${GPU_MODELS:-"cnn vit alexnet vgg16 faster_rcnn"}
# A dry run of this script on a machine without a GPU: GPU_DEVICE=cpu GPU_PROFILE=smoke benchmarks/gpu.sh /tmp/gpu
DEVICE=${GPU_DEVICE:-cuda} PROFILE=${GPU_PROFILE:-gpu}
# VGG16 at 224 px is left out of the export by default: where onnxruntime has no CUDA provider, checking it on
# the full test split costs minutes of CPU. GPU_EXPORT_MODELS="cnn ... vgg16" puts it back.
EXPORT_MODELS=${GPU_EXPORT_MODELS:-"cnn vit alexnet faster_rcnn"}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
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
step train "${GPU_TRAIN_LIMIT:-450}" $PY -m mnistserve train --profile "$PROFILE" --device "$DEVICE" --runs-dir "$RUNS" \
  $(printf -- '-m %s ' $MODELS)
step export "${GPU_EXPORT_LIMIT:-90}" $PY -m mnistserve export --runs-dir "$RUNS" --out "$OUTDIR/exported" \
  $(printf -- '-m %s ' $EXPORT_MODELS)
step inference "${GPU_INFERENCE_LIMIT:-60}" $PY -m benchmarks.inference --device "$DEVICE" --repeats 20 \
  --exported "$OUTDIR/exported" --run "$RUNS/latest" --out "$OUTDIR"
# What is worth keeping (no checkpoints, no ONNX files) next to the logs.
cp "$RUNS"/latest/comparison.json "$RUNS"/latest/report.md "$RUNS"/latest/*.png "$OUTDIR/" 2>/dev/null
cp "$OUTDIR/exported/manifest.json" "$OUTDIR/manifest.json" 2>/dev/null
for f in "$RUNS"/*/*/result.json; do [ -f "$f" ] && cp "$f" "$OUTDIR/result-$(basename "$(dirname "$f")").json"; done
echo "done: $(date -u +%FT%TZ)" | tee -a "$OUTDIR/summary.txt"
