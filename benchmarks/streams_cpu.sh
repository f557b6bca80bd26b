#!/usr/bin/env bash
# EM vs AdaDEM on the new test streams (BENCHMARKS.md section 14), committed ViT, Tent and ETA, seed 1, 300 images
# per corruption (per visit for gradual), one thread: gradual, mixed, label-shift (delta 0.01, 0.1, 1) and long
# (3 rounds). Resumable: rerun to continue; `entmin report --store results/streams.sqlite` rebuilds the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
E=".venv/bin/entmin compare --models vit --methods source,tent,eta --objectives em,adadem --seeds ${SEEDS:-1}
   --n-per-domain 300 --threads 1 --store results/streams.sqlite"
$E --protocols mixed,label-shift --delta 0.01 --out results/streams/mixed-ls0.01
$E --protocols label-shift --delta 0.1 --out results/streams/ls0.1
$E --protocols label-shift --delta 1.0 --out results/streams/ls1
$E --protocols long --rounds 3 --out results/streams/long
$E --protocols gradual --out results/streams/gradual
$E --protocols continual --out results/streams/continual
