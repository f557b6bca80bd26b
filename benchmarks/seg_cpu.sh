#!/usr/bin/env bash
# Segmentation TTA of BENCHMARKS.md section 16 on CPU: source, BN, Tent+EM, Tent+AdaDEM on the 15 corrupted scene
# domains (severity 5, 300 scenes per domain), single-domain and continual, 3 seeds, Adam lr 1e-3; then Tent
# continual at lr 1e-2; resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/seg.sqlite}
.venv/bin/entmin seg-tta --methods source,bn,tent --objectives em,adadem --protocols single,continual \
  --seeds 0,1,2 --n-per-domain 300 --store "$STORE" --figure docs/figures/seg_maps_fog.png \
  --figure-domain fog
# a larger learning rate, where EM's continual stream starts to degrade (continual only)
.venv/bin/entmin seg-tta --methods tent --objectives em,adadem --protocols continual --seeds 0,1,2 \
  --n-per-domain 300 --lr 1e-2 --store "$STORE"
.venv/bin/entmin report --store "$STORE" --out results/seg_report
