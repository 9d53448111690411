#!/usr/bin/env bash
# The inputs benchmarks/gpu_sweep.sh reads, made on the CPU into one folder to carry to a GPU machine: MNIST's IDX
# files, the real-world development split (preprocessed) and the capture pools of the sweep's variants.
# Usage: benchmarks/gpu_sweep_cache.sh DIR   (then MNISTSERVE_CACHE=DIR benchmarks/gpu_sweep.sh OUTDIR there)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?usage: benchmarks/gpu_sweep_cache.sh DIR}
mkdir -p "$DIR"
PY=${PY:-.venv/bin/python}
MNISTSERVE_CACHE="$DIR" $PY - <<'PY'
from training import captures, robustness
from training.data import load_mnist

data = load_mnist()  # cached as IDX files under MNISTSERVE_CACHE
robustness.load(robustness.PER_CONDITION["cpu"], data.cache_dir, split="dev")
train = data.train
for subset, n in ((50_000, 7_500), (50_000, 15_000), (40_000, 6_000), (25_000, 3_750)):
    part = train.subset(subset)
    captures.load(part.images.numpy(), part.labels.numpy(), n, captures.parse("all"), 0, data.cache_dir)
    print(f"pool: {n} captures of the first {subset} training digits")
PY
find "$DIR" -name '*-ubyte' -exec gzip -f {} \;  # the loader reads .gz too: a quarter of the bytes to carry
du -sh "$DIR"
