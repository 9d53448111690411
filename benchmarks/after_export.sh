#!/usr/bin/env bash
# Every report a new export makes stale, one after another (~20 min on 2 cores, quiet): the real-world set as served,
# the preprocessing's accuracy before/after on dev (with its ablation), sealed and sealed-v1, ensembles and test-time
# views, the preprocessing's time, the serving throughput (1 and 2 workers), the garbage collector's setting, the TorchServe comparison and the
# container. Run it in a clean checkout after `make train` (or `mnistserve export`); commit the reports with it. Each
# report after the first says -dirty: the earlier steps wrote theirs into the checkout. Stop 26 ran it as
# /work/scratch/s26/reports.sh, the same steps, with the container built by a separate `make container`.
source "$(dirname "$0")/steps.sh"
step .venv/bin/mnistserve robustness --out reports/robustness
step $PY -m benchmarks.preprocess_accuracy --against 6f985d0 \
  --variant 'no fold lines: regions.LINE_CHORD=9' \
  --variant 'line search on the whole mask: regions.LINE_EDGES=0' \
  --variant 'polarity by tails only: paper.POLARITY_MARGIN=2' \
  --variant 'no page level from pixels: paper.PAGE_SHARE=2' \
  --variant 'no blot check: paper.SHADE_SHARE=9' \
  --variant 'opening cells of k/16: paper.OPEN_CELL=16' \
  --variant 'coarse paper only: paper.FINE=0' \
  --variant 'no border polarity: paper.BORDER_SPREAD=0' \
  --variant 'fine opening at any width: paper.FINE_WIDEST=0' \
  --variant 'line search at full resolution only: regions.LINE_GRID=100000' \
  --variant 'no drawn-paper shortcut: paper.DRAWN_STROKE=0' --gallery
step $PY -m benchmarks.preprocess_accuracy --against 6f985d0 --split sealed
step $PY -m benchmarks.preprocess_accuracy --against 6f985d0 --split sealed-v1
step $PY -m benchmarks.ensemble
step $PY -m benchmarks.preprocess --runs 200 --against c729eef
step $PY -m benchmarks.throughput --exported exported --out reports/serving
for w in 1 2; do
  step $PY -m benchmarks.throughput --exported exported --out reports/serving --concurrency 8 64 --no-pin \
    --server-env MNISTSERVE_WORKERS=$w --name serving-workers-$w
done
step $PY -m benchmarks.throughput --baseline 5b63a68 --rounds 3 --modes bentoml-direct --concurrency 1 8 64 --name gc
step make versus
step make container
step make container-report
finish
