#!/bin/bash
cd /work/train45
echo "== start $(date -u +%H:%M:%S)"
MNISTSERVE_CACHE=/work/train45-cache make train
echo "== rc $? end $(date -u +%H:%M:%S)"
