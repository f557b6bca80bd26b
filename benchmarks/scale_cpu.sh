#!/usr/bin/env bash
# The scale measurements of BENCHMARKS.md section 12 on the 2-core CPU machine, on a quiet machine: ONE process
# at a time, one thread (two side by side, or a test run beside it, made the ratios noisy by up to 2x).
# ResNet-50 and ViT-B/16 at batch 16 (one warm-up + 2 timed steps) and 64 (one warm-up + 1 timed step), every
# host x {EM, AdaDEM}, the official code interleaved, and the speed options. Resumable (rerun: finished
# measurements are skipped). Needs the vision extra and the official files in $ENTMIN_OFFICIAL_DIR (see
# benchmarks/side_by_side.py). About an hour here.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/scale.jsonl}
mkdir -p "$(dirname "$OUT")"
S=benchmarks/bench_scale.py
.venv/bin/python $S --model resnet50 --batch 16 --steps 2 --speed bf16,channels_last,compile --out "$OUT"
.venv/bin/python $S --model vit_b16 --batch 16 --steps 2 --speed bf16,compile --out "$OUT"
.venv/bin/python $S --model resnet50 --batch 64 --steps 1 --speed bf16,compile --out "$OUT"
.venv/bin/python $S --model vit_b16 --batch 64 --steps 1 --speed bf16 --out "$OUT"
.venv/bin/python $S --table "$OUT"
