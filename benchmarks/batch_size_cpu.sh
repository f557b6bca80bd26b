#!/usr/bin/env bash
# The batch-size study of BENCHMARKS.md section 18 (issue 15) on a 2-core CPU machine: BatchNorm CNN (cnn),
# GroupNorm CNN (cnn_gn) and LayerNorm ViT (vit) at test batch sizes 1, 4 and 16, every host x {EM, AdaDEM},
# reset per corruption (SAR's bs1 setting), six corruptions at severity 5, 300 images each (a stated reduction).
# The learning rate follows SAR's linear rule: the model's batch-64 default x batch / 64. Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/batchsize.sqlite}
SEEDS=${SEEDS:-1}
C=gaussian_noise,defocus_blur,snow,fog,contrast,jpeg_compression
for bs in 16 4 1; do
  for m in cnn cnn_gn vit; do
    [ "$m" = cnn ] && [ "$bs" = 1 ] && continue            # BatchNorm needs 2 samples: refused, not run
    base=$([ "$m" = vit ] && echo 1e-2 || echo 1e-3)
    lr=$(python3 -c "print($base * $bs / 64)")
    methods=source,tent,eta,eata,sar,deyo
    [ "$m" = cnn ] && methods=source,bn,tent,eta,eata,sar,deyo
    .venv/bin/entmin compare --models "$m" --methods "$methods" --objectives em,adadem --protocols single \
      --corruptions "$C" --n-per-domain 300 --batch-size "$bs" --lr "$lr" --seeds "$SEEDS" --threads 1 \
      --store "$STORE" --out "results/batchsize_report/${m}_bs${bs}"
  done
done
