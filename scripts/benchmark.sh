#!/usr/bin/env bash
# Set everything up (idempotent) and run the main offline benchmark, printing its table and writing its figures:
#   bash scripts/benchmark.sh          the headline: the LayerNorm ViT on the continual Fashion-MNIST-C stream
#                                      (15 corruptions, severity 5, 2,000 images each), source vs Tent with EM
#                                      vs AdaDEM: EM collapses on the intensity shifts, AdaDEM does not (~5 min on
#                                      2 CPU cores)
#   bash scripts/benchmark.sh cnn      the BatchNorm CNN, single-domain and continual, BN-adapt included (test-batch
#                                      statistics do nearly all the work there)
# Further arguments go to `entmin compare` (e.g. --seeds 1,2,3 --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "cnn" ]; then
  shift
  exec .venv/bin/entmin compare --methods source,bn,tent --objectives em,adadem --protocols single,continual \
    --models cnn --seeds 1 --n-per-domain 1000 --store results/quickstart.sqlite --out results/quickstart-cnn "$@"
fi
exec .venv/bin/entmin compare --methods source,tent --objectives em,adadem --protocols continual \
  --models vit --seeds 1 --n-per-domain 2000 --store results/quickstart.sqlite --out results/quickstart "$@"
