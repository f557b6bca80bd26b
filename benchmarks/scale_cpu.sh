#!/usr/bin/env bash
# The scale measurements of BENCHMARKS.md section 12 on the 2-core CPU machine: ResNet-50 and ViT-B/16 side by
# side (one thread each), batch 16 (one warm-up + 2 timed steps, plus the speed options) then batch 64 (one
# warm-up + 1 timed step). Needs the vision extra and the official files in $ENTMIN_OFFICIAL_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/scale.jsonl}
mkdir -p "$(dirname "$OUT")"
for model in resnet50 vit_b16; do
  ( .venv/bin/python benchmarks/bench_scale.py --model $model --batch 16 --steps 2 --speed bf16,channels_last,compile --out "$OUT"
    .venv/bin/python benchmarks/bench_scale.py --model $model --batch 64 --steps 1 --out "$OUT" ) > "results/scale-$model.log" 2>&1 &
done
wait
.venv/bin/python benchmarks/bench_scale.py --table "$OUT"
