#!/bin/bash
cd /work/train46
echo "== start $(date -u +%H:%M:%S)"
MNISTSERVE_CACHE=/work/train46-cache make train
echo "== rc $? end $(date -u +%H:%M:%S)"
