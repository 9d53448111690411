#!/usr/bin/env bash
# Training choices for the cpu profile, made fast on one CUDA GPU: every architecture at its cpu-profile settings
# and variants of them (captures, the fill part, epochs, VGG16/AlexNet heads, batch norm, input size), each trained
# and scored on MNIST's validation split and the real-world development split (benchmarks/generalisation.py). The
# sealed split is never read. A variant's figures on the GPU (bf16 autocast) stand in for the CPU run's when
# choosing; the chosen settings are then trained on the CPU by `make train`.
# Usage: [SWEEP_ROUND=2] benchmarks/gpu_sweep.sh OUTDIR   (MNISTSERVE_CACHE must hold MNIST, the dev split and the capture pools:
#        benchmarks/gpu_sweep_cache.sh makes them on the CPU first, since the GPU machine has no hershey-fonts)
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:?usage: benchmarks/gpu_sweep.sh OUTDIR}
mkdir -p "$OUTDIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEVICE=${SWEEP_DEVICE:-cuda} PROFILE=${SWEEP_PROFILE:-cpu}  # SWEEP_DEVICE=cpu SWEEP_PROFILE=smoke: a dry run
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision",
torchvision.__version__)'
  git rev-parse HEAD 2>/dev/null || echo "git revision: see the committing commit"
} 2>&1 | tee "$OUTDIR/device.txt"

ALL="styles,stroke,affine,elastic,blur,contrast,noise"
FILL="styles,stroke,fill,affine,elastic,blur,contrast,noise"
sweep() {  # sweep MODEL LIMIT VARIANT... : one process per model, under a time limit, its report in OUTDIR
  local model=$1 limit=$2; shift 2
  local args=() t0
  for v in "$@"; do args+=(--variant "$v"); done
  t0=$(date +%s)
  timeout -k 10 "$limit" $PY -m benchmarks.generalisation --model "$model" --device "$DEVICE" --profile "$PROFILE" \
    --out "$OUTDIR" "${args[@]}" 2>&1 | grep -v "^realworld:" | tee "$OUTDIR/$model.log"
  echo "$model: rc=${PIPESTATUS[0]}, $(( $(date +%s) - t0 ))s (limit ${limit}s)" | tee -a "$OUTDIR/summary.txt"
}

if [ "${SWEEP_ROUND:-1}" = 1 ]; then
sweep cnn 130 "base:" "fill:augment=$FILL" "fill-caps15-ep6:augment=$FILL;captures=0.15;epochs=6" \
  "fill-outline-caps15-ep6:augment=$FILL,outline;captures=0.15;epochs=6" "ep6:epochs=6" \
  "fill-caps30-ep6:augment=$FILL;captures=0.3;epochs=6" "caps15:captures=0.15" "fill-ep6:augment=$FILL;epochs=6"
sweep vgg16 100 "base:weights=none" "small:weights=none;build={\"head\": \"small\"}" "small-bn:weights=none;build={\"head\": \"small\", \"batch_norm\": true}" \
  "small-bn-fill-caps15:weights=none;augment=$FILL;captures=0.15;build={\"head\": \"small\", \"batch_norm\": true}" \
  "small-bn-ep2:weights=none;epochs=2;build={\"head\": \"small\", \"batch_norm\": true}"
sweep alexnet 80 "base:weights=none" "small:weights=none;build={\"head\": \"small\"}" "small-all:weights=none;train_subset=50000;build={\"head\": \"small\"}" \
  "small-all-fill-caps15:weights=none;train_subset=50000;augment=$FILL;captures=0.15;build={\"head\": \"small\"}" \
  "small-all-ep4:weights=none;train_subset=50000;epochs=4;build={\"head\": \"small\"}" \
  "small96-all:weights=none;train_subset=50000;build={\"head\": \"small\", \"image_size\": 96}"
sweep vit 110 "base:" "fill-caps15:augment=$FILL;captures=0.15" "fill:augment=$FILL"
sweep faster_rcnn 100 "base:" "fill-caps15:augment=$FILL;captures=0.15"
else  # round 2: what round 1 left open (VGG16 and AlexNet epochs and data; the CNN's captures without fill)
sweep vgg16 80 "small-bn-ep3:weights=none;epochs=3;build={\"head\": \"small\", \"batch_norm\": true}" \
  "small-bn-all-ep2:weights=none;train_subset=50000;epochs=2;build={\"head\": \"small\", \"batch_norm\": true}"
sweep alexnet 60 "small-all-ep6:weights=none;train_subset=50000;epochs=6;build={\"head\": \"small\"}" \
  "torchvision-all-ep4:weights=none;train_subset=50000;epochs=4" \
  "small-all-ep8:weights=none;train_subset=50000;epochs=8;build={\"head\": \"small\"}"
sweep cnn 60 "caps15-ep6:captures=0.15;epochs=6" "ep8:epochs=8"
fi
echo "all: $(cat "$OUTDIR/summary.txt" | tr '\n' ';')"
