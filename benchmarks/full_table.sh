#!/usr/bin/env bash
# The full method x objective table of BENCHMARKS.md (issue 4): both models, both protocols, 3 seeds,
# severity 5, 400 images per corruption (a fixed subset, the same for every seed and method), batch 64.
# Each model runs in its own process with one thread (the two run side by side on a 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N_PER_DOMAIN:-400}
.venv/bin/entmin compare --methods source,bn,tent,eta,eata,sar,deyo --objectives em,adadem \
  --protocols single,continual --models cnn --seeds 1,2,3 --n-per-domain "$N" --threads 1 \
  --store results/full.sqlite --out results/full_cnn > results/full_cnn.log 2>&1 &
.venv/bin/entmin compare --methods source,tent,eta,eata,sar,deyo --objectives em,adadem \
  --protocols single,continual --models vit --seeds 1,2,3 --n-per-domain "$N" --threads 1 \
  --store results/full_vit.sqlite --out results/full_vit > results/full_vit.log 2>&1 &
wait
