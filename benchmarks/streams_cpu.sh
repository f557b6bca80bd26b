#!/usr/bin/env bash
# EM vs AdaDEM on the test streams of issue 15 (BENCHMARKS.md sections 14 and 21), one thread, resumable: rerun to
# continue; `entmin report --store results/streams.sqlite` rebuilds the tables. 15 corruptions at severity 5,
# N images per corruption (gradual: GRADUAL_N per visit, 9 visits per corruption), the same images for every method.
#   section 14 (first look):  bash benchmarks/streams_cpu.sh                       (ViT, source/Tent/ETA, seed 1)
#   section 21 (all hosts):   OUT=results/streams_all MODEL=vit SEEDS=1,2,3 METHODS=all GRADUAL_N=100 bash benchmarks/streams_cpu.sh
#                             OUT=results/streams_all MODEL=cnn SEEDS=1,2,3 METHODS=all GRADUAL_N=100 bash benchmarks/streams_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-vit}
METHODS=${METHODS:-source,tent,eta}
if [ "$METHODS" = all ]; then
  METHODS=source,tent,eta,eata,sar,deyo
  [ "$MODEL" = cnn ] && METHODS=source,bn,tent,eta,eata,sar,deyo    # BN-adapt applies to the BatchNorm CNN only
fi
N=${N:-300}
GRADUAL_N=${GRADUAL_N:-$N}
OUT=${OUT:-results/streams}
[ "$MODEL" != vit ] && OUT="$OUT/$MODEL"
E=".venv/bin/entmin compare --models $MODEL --methods $METHODS --objectives em,adadem --seeds ${SEEDS:-1}
   --threads 1 --store ${STORE:-results/streams.sqlite}"
$E --n-per-domain "$N" --protocols mixed,label-shift --delta 0.01 --out "$OUT/mixed-ls0.01"
$E --n-per-domain "$GRADUAL_N" --protocols gradual --out "$OUT/gradual"
$E --n-per-domain "$N" --protocols long --rounds 3 --out "$OUT/long"
$E --n-per-domain "$N" --protocols label-shift --delta 0.1 --out "$OUT/ls0.1"
$E --n-per-domain "$N" --protocols label-shift --delta 1.0 --out "$OUT/ls1"
$E --n-per-domain "$N" --protocols continual --out "$OUT/continual"
