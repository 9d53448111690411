#!/bin/bash
cd /work/train44
echo "== start $(date -u +%H:%M:%S)"
MNISTSERVE_CACHE=/work/train44-cache make train
echo "== rc $? end $(date -u +%H:%M:%S)"
