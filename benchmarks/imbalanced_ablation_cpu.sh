#!/usr/bin/env bash
# Section 19's ablations of AdaDEM's bank under the class-sorted (q = 500000) and the i.i.d. (q = 1) streams, same
# settings as imbalanced_cpu.sh: the bank updated from the hosts' selected samples only (bank_update=selected),
# and a slower bank (pi = 0.01 instead of the paper's 0.1, through a TOML objective_options table). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/imbalanced.sqlite}
SEEDS=${SEEDS:-1}
PI_TOML=$(mktemp --suffix .toml)
trap 'rm -f "$PI_TOML"' EXIT
printf '[objective_options]\npi = %s\n' "${PI:-0.01}" > "$PI_TOML"
for q in 500000 1; do
  .venv/bin/entmin compare --models vit --methods tent,eta,eata,sar,deyo --objectives adadem --bank-update selected \
    --protocols imbalanced --imbalance "$q" --n-per-domain 500 --seeds "$SEEDS" --threads 1 \
    --store "$STORE" --out "results/imbalanced_report/selected_q$q"
  .venv/bin/entmin compare --config "$PI_TOML" --models vit --methods tent,eta,eata,sar,deyo --objectives adadem \
    --protocols imbalanced --imbalance "$q" --n-per-domain 500 --seeds "$SEEDS" --threads 1 \
    --store "$STORE" --out "results/imbalanced_report/pi_q$q"
done
