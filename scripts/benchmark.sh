#!/usr/bin/env bash
# Set everything up (idempotent) and run the default offline benchmark: Tent with EM vs AdaDEM on the
# committed CNN, single-domain and continual, 15 Fashion-MNIST-C corruptions at severity 5. Prints the table.
# Extra arguments go to `entmin compare` (e.g. --seeds 1,2,3 --n-per-domain 10000 --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/entmin compare --methods source,bn,tent --objectives em,adadem --protocols single,continual \
  --models cnn --seeds 1 --n-per-domain 1000 --store results/quickstart.sqlite --out results/quickstart "$@"
