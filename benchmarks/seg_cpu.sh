#!/usr/bin/env bash
# Segmentation TTA of BENCHMARKS.md section 16 on CPU: source, BN, Tent+EM, Tent+AdaDEM on the 15 corrupted scene
# domains (severity 5, 300 scenes per domain), single-domain and continual, 3 seeds; resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/seg.sqlite}
.venv/bin/entmin seg-tta --methods source,bn,tent --objectives em,adadem --protocols single,continual \
  --seeds 0,1,2 --n-per-domain 300 --store "$STORE" --figure docs/figures/seg_maps_fog.png \
  --figure-domain fog
.venv/bin/entmin report --store "$STORE" --out results/seg_report
