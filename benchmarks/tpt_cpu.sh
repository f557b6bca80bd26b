#!/usr/bin/env bash
# The TPT benchmark of BENCHMARKS.md section 17 on a 2-core CPU machine, on the committed CLIP-style model
# (src/entmin/models/checkpoints/mini_clip.pt). Resumable per block of 100 images: rerun after a kill.
#  * main table: zero-shot, ensemble, CoOp (16 shots) and TPT / TPT(CoOp) with EM, DEM(0.8, 1.0), AdaDEM,
#    3 seeds of the augmentations, clean + the 15 corruptions at severity 5, 300 images each;
#  * steps x lr: TPT with EM and AdaDEM, steps {1, 2, 4} x lr {5e-3, 2e-2}, seed 0.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/tpt.sqlite}
N=${N:-300}
TPT=(.venv/bin/entmin tpt --n-images "$N" --store "$STORE")
"${TPT[@]}" --methods zero-shot,ensemble,coop,tpt,tpt-coop --objectives em,dem,adadem --seeds 0,1,2 --jobs "${JOBS:-1}"
"${TPT[@]}" --methods tpt --objectives em,adadem --steps 1,2,4 --lr 5e-3,2e-2 --seeds 0 --jobs "${JOBS:-1}"
.venv/bin/entmin report --store "$STORE" --out results/tpt_report
