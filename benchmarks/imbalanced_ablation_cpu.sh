#!/usr/bin/env bash
# Section 19's ablation: AdaDEM's bank updated from the hosts' selected samples only (bank_update=selected),
# under the class-sorted (q = 500000) and the i.i.d. (q = 1) streams; same settings as imbalanced_cpu.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/imbalanced.sqlite}
for q in 500000 1; do
  .venv/bin/entmin compare --models vit --methods tent,eta,eata,sar,deyo --objectives adadem --bank-update selected \
    --protocols imbalanced --imbalance "$q" --n-per-domain 500 --seeds "${SEEDS:-1}" --threads 1 \
    --store "$STORE" --out "results/imbalanced_report/selected_q$q"
done
