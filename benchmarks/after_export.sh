#!/usr/bin/env bash
# Every report a new export makes stale, one after another (~32 min on 2 cores, quiet), as stops 44 and 45 ran it on
# their exports: the weights against the previous export's (when OLD_EXPORTED names that folder), the real-world set
# as served, the "unsure" rule and the temperatures, UCI's and MNIST-val's 8x8 digits, ensembles and test-time views,
# the faint and bubble-outline photo pools (the seeds choices read and fresh ones), the preprocessing's accuracy on
# sealed, the photo's time budget, throughput (1 and 2 workers, three rounds), the garbage collector's setting, the
# TorchServe comparison and the container. Run it in a clean checkout after `make train` (or `mnistserve export`);
# commit the reports with it. Each report after the first says -dirty unless each is committed as it lands.
# Before it, copy the reports the history quotes into run-<previous run id>/ folders (reports/README.md).
# Not here: the dev ablation and sealed-v1 (reports/preprocess/accuracy*.md), history on run 20261206T025519Z.
source "$(dirname "$0")/steps.sh"
[ -z "${OLD_EXPORTED:-}" ] || step $PY -m benchmarks.same_weights "$OLD_EXPORTED" exported --out reports/cpu/same-weights.md
step .venv/bin/mnistserve robustness --out reports/robustness
step $PY -m benchmarks.flag_rule
step $PY -m benchmarks.temperature
step $PY -m benchmarks.real_digits --digits uci --against e0b25ea
step $PY -m benchmarks.real_digits --digits mnist-val --against e0b25ea
step $PY -m benchmarks.ensemble
step $PY -m benchmarks.shadowed_digits --against 9f4d014 --blank-seed 5 --blank-seed 6 --blank-seed 8
step $PY -m benchmarks.shadowed_digits --against 9f4d014 --seed 19 --seed 23 --seed 29 --blank-seed 31 \
  --blank-seed 37 --out reports/shadowed/fresh
step $PY -m benchmarks.shadowed_digits --style hollow --against 5667ed7 --seed 7 --seed 11 --blank 0 \
  --out reports/hollow/digits
step $PY -m benchmarks.shadowed_digits --style hollow --against 5667ed7 --seed 19 --seed 23 --blank 0 \
  --out reports/hollow/digits/fresh
step $PY -m benchmarks.preprocess_accuracy --against 6f985d0 --split sealed
step $PY -m benchmarks.photo_budget
step $PY -m benchmarks.throughput --exported exported --out reports/serving
for w in 1 2; do
  step $PY -m benchmarks.throughput --exported exported --out reports/serving --concurrency 8 64 --no-pin \
    --rounds 3 --server-env MNISTSERVE_WORKERS=$w --name serving-workers-$w
done
step $PY -m benchmarks.throughput --baseline 5b63a68 --rounds 3 --modes bentoml-direct --concurrency 1 8 64 --name gc
step make versus
step make container
step make container-report
finish
