#!/usr/bin/env bash
# SAR's online imbalanced label shift on the ViT (BENCHMARKS.md section 18, issue 15): continual over the 15
# corruptions at severity 5, 500 images each (a stated reduction), imbalance ratio 500000 (sorted by class) and 1
# (i.i.d., the same code path), every host x {EM, AdaDEM}. Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/imbalanced.sqlite}
for q in 500000 1; do
  .venv/bin/entmin compare --models vit --methods source,tent,eta,eata,sar,deyo --objectives em,adadem \
    --protocols imbalanced --imbalance "$q" --n-per-domain 500 --seeds "${SEEDS:-1}" --threads 1 \
    --store "$STORE" --out "results/imbalanced_report/q$q"
done
