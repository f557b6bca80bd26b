#!/usr/bin/env bash
# UDA table of BENCHMARKS.md section 16 on CPU: clean scenes -> snow (severity 5), source fine-tuning, MinEnt,
# MinEnt+AdaDEM, AdvEnt, AdvEnt+AdaDEM, AdvEnt+DEM*; 3 seeds x 1,000 steps; resumable (checkpoints every 250
# steps). DEM* = (tau, alpha) searched on another target domain (frost: disjoint from snow's test scenes), one
# seed, then run on snow with 3 seeds. PART=main|search|dem runs one part (two parts can run side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/seg_uda.sqlite}
SEARCH=${SEARCH:-results/seg_uda_search.sqlite}
PART=${PART:-all}
E=.venv/bin/entmin
if [[ $PART == all || $PART == main ]]; then
  $E seg-uda --methods source,minent,advent --objectives em,adadem --target snow --seeds 0,1,2 --store "$STORE"
fi
if [[ $PART == all || $PART == search ]]; then
  $E seg-uda --methods advent --objectives dem --tau 0.5,1,2 --alpha "${SEARCH_ALPHA:-1}" --target frost --seeds 0 \
    --store "$SEARCH"
  $E report --store "$SEARCH" --out results/seg_uda_search_report
fi
if [[ $PART == all || $PART == dem ]]; then
  # the search's best (tau, alpha), read from results/seg_uda_search_report; default: the paper's TTA DEM*
  $E seg-uda --methods advent --objectives dem --tau "${TAU:-1}" --alpha "${ALPHA:-1}" --target snow --seeds 0,1,2 \
    --store "$STORE"
fi
$E report --store "$STORE" --out results/seg_uda_report
