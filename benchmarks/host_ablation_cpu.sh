#!/usr/bin/env bash
# Why does AdaDEM's gain depend on the host? (issue 15; BENCHMARKS.md section 20). The committed ViT, continual over
# the 15 corruptions at severity 5, 2,000 images each, batch 64, lr 0.01 (section 4's setting, rerun on CPU):
#  1. the main grid, source + every host x {EM, AdaDEM} (also regenerates section 4's ViT figures);
#  2. ETA and DeYO with their sample selection and/or their weights switched off (method_options in TOML), x {EM,
#     AdaDEM}: with neither, ETA is Tent. Resumable; SEEDS=1,2,3 for more seeds; PART=main|ablation, HOSTS=eta.
# On the second small dataset (benchmarks/second_dataset_cpu.sh first):
#   STORE=results/mnist/mnist.sqlite N=500 REPORT=results/mnist/ablation_report PART=ablation \
#   DATA_ARGS="--dataset idx --data-dir results/mnist/idx --weights results/mnist/mnist_vit.pt" \
#   bash benchmarks/host_ablation_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/vit_continual_cpu.sqlite}
SEEDS=${SEEDS:-1}
PART=${PART:-all}
E=".venv/bin/entmin compare --models vit --protocols continual --n-per-domain ${N:-2000} --seeds $SEEDS --threads 1
   --store $STORE ${DATA_ARGS:-}"
if [[ $PART == all || $PART == main ]]; then
  $E --methods source,tent,eta,eata,sar,deyo --objectives em,adadem --out results/vit_continual_cpu
fi
if [[ $PART == all || $PART == ablation ]]; then
  T=$(mktemp -d)
  trap 'rm -rf "$T"' EXIT
  printf '[method_options]\nselect = false\n' > "$T/eta_noselect.toml"
  printf '[method_options]\nreweight = false\n' > "$T/eta_noweight.toml"
  printf '[method_options]\nselect = false\nreweight = false\n' > "$T/eta_neither.toml"
  printf '[method_options]\nent_margin = 1e9\nplpd_threshold = -2.0\n' > "$T/deyo_noselect.toml"
  printf '[method_options]\nreweight_ent = false\nreweight_plpd = false\n' > "$T/deyo_noweight.toml"
  printf '[method_options]\nent_margin = 1e9\nplpd_threshold = -2.0\nreweight_ent = false\nreweight_plpd = false\n' \
    > "$T/deyo_neither.toml"
  for host in ${HOSTS:-eta deyo}; do
    for v in noselect noweight neither; do
      $E --config "$T/${host}_$v.toml" --methods "$host" --objectives em,adadem --out "$T/out"
    done
  done
fi
.venv/bin/entmin report --store "$STORE" --out "${REPORT:-results/host_ablation_report}"
