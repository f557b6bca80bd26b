#!/usr/bin/env bash
# Every measured table of BENCHMARKS.md (issues 4-7) as independent, resumable jobs run side by side on one
# CUDA machine (one process per job, one CPU thread each; the small models leave the GPU mostly idle, so
# several processes share it). Rerunning the script continues where it stopped: every job writes to a
# results store and skips what is finished, so a budget-limited run can be resumed on a fresh machine
# from a copy of $R.
#
#     BUDGET_S=540 JOBS=16 [ONLY='table|estimate'] bash benchmarks/gpu_experiments.sh
#
# Sizes: N_PER_DOMAIN images per corruption (a fixed subset, the same for every method and seed) for the
# main table and the DEM* search (which uses 20% of it for the search and reports the other 80%);
# SWEEP_N for the learning-rate sweep. On a CPU-only machine set DEVICE=cpu (hours, not minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_env.sh
R=${RESULTS:-results/gpu}; mkdir -p "$R/logs"
DEVICE=${DEVICE:-cuda}; N=${N_PER_DOMAIN:-2000}; SWEEP_N=${SWEEP_N:-500}; TRIALS=${TRIALS:-20}
JOBS=${JOBS:-16}; BUDGET=${BUDGET_S:-0}
DEADLINE=$(( $(date +%s) + BUDGET ))
C="--device $DEVICE --threads 1"

list=$R/jobs.txt; : > "$list"
add() { echo "$1|$2" >> "$list"; }   # name|command
# 1. Main table (issue 4): methods x {EM, AdaDEM} x {single, continual} x 3 seeds, both models.
for seed in 1 2 3; do
  for m in sar eata deyo eta tent source; do
    add "table-vit-$m-$seed" "$ENTMIN compare --methods $m --objectives em,adadem --protocols single,continual --models vit --seeds $seed --n-per-domain $N --store $R/table.sqlite --out $R/table_parts $C"
  done
  for m in sar eata deyo eta tent bn source; do
    add "table-cnn-$m-$seed" "$ENTMIN compare --methods $m --objectives em,adadem --protocols single,continual --models cnn --seeds $seed --n-per-domain $N --store $R/table.sqlite --out $R/table_parts $C"
  done
done
# 2. Accuracy estimation (issue 5): all 75 splits + clean, both models, in corruption groups.
for model in cnn vit; do
  for grp in gaussian_noise,shot_noise,impulse_noise,defocus_blur,glass_blur motion_blur,zoom_blur,snow,frost,fog brightness,contrast,elastic_transform,pixelate,jpeg_compression; do
    add "estimate-$model-${grp%%,*}" "$ENTMIN estimate-eval --models $model --corruptions $grp --lr 0.01 --steps 150 --store $R/estimate.sqlite --out $R/estimate_parts/$model-${grp%%,*} $C"
  done
  add "phases-$model" "$ENTMIN phases --model $model --out $R/phases_$model --device $DEVICE"
done
# 3. DEM* search (issue 6): one TPE study per (host, model, protocol).
for model in cnn vit; do
  for m in tent eta eata sar deyo; do
    for p in single continual; do
      add "search-$model-$m-$p" "$ENTMIN search --method $m --model $model --protocol $p --trials $TRIALS --seeds 1 --n-per-domain $N --store $R/search_runs.sqlite --study $R/study-$model-$m-$p.sqlite $C"
    done
  done
done
# 4. Training with entropy objectives (issue 7), one job per seed.
for seed in 1 2 3; do
  add "train-supervised-$seed" "$ENTMIN train --task supervised --seeds $seed --store $R/train.sqlite --out $R/train_parts $C"
  for lpc in 4 25 400; do
    add "train-semi$lpc-$seed" "$ENTMIN train --task semi --losses supervised,entmin,entmin_adadem,fixmatch,fixmatch_adadem --labels-per-class $lpc --seeds $seed --store $R/train.sqlite --out $R/train_parts $C"
  done
  add "train-imbalanced-$seed" "$ENTMIN train --task imbalanced --losses supervised,entmin,entmin_adadem --imbalance-ratios 10,100 --seeds $seed --store $R/train.sqlite --out $R/train_parts $C"
done
# 5. Learning-rate sensitivity (issue 6): Tent x {EM, AdaDEM-Norm, AdaDEM-MEC, AdaDEM} x 10 rates x 3 seeds.
for seed in 1 2 3; do
  for model in cnn vit; do
    for p in single continual; do
      add "sweep-$model-$p-$seed" "$ENTMIN sweep --methods tent --protocols $p --models $model --seeds $seed --n-per-domain $SWEEP_N --store $R/sweep.sqlite --out $R/sweep_parts $C"
    done
  done
done

# 6. tau vs the source model's confidence (issue 6, item 4): per-corruption search, joint and at alpha = 1.
for model in vit cnn; do
  add "tau-$model-joint" "python3 benchmarks/tau_vs_confidence.py --model $model --method tent --trials $TRIALS --n-per-domain $N --out $R/tau_$model --device $DEVICE"
  add "tau-$model-alpha1" "python3 benchmarks/tau_vs_confidence.py --model $model --method tent --alpha 1.0 --n-per-domain $N --out $R/tau_$model --device $DEVICE"
done

# ONLY='train|search' runs the jobs whose names start with one of these (in that order of groups).
if [ -n "${ONLY:-}" ]; then
  for g in ${ONLY//|/ }; do grep -E "^$g" "$list"; done > "$list.only"; mv "$list.only" "$list"
fi

run_one() {
  local name=${1%%|*} cmd=${1#*|} left
  if [ "$BUDGET" -gt 0 ]; then
    left=$(( DEADLINE - $(date +%s) ))
    [ "$left" -le 5 ] && { echo "skip $name (no time left)"; return 0; }
    cmd="timeout -s KILL $left $cmd"
  fi
  local t0=$SECONDS
  $cmd > "$R/logs/$name.log" 2>&1
  local rc=$?
  echo "$(date +%T) rc=$rc $((SECONDS - t0))s $name"
}
export -f run_one; export R BUDGET DEADLINE
echo "$(wc -l < "$list") jobs, $JOBS at a time, budget ${BUDGET}s"
tr '\n' '\0' < "$list" | xargs -0 -P "$JOBS" -I{} bash -c 'run_one "$1"' _ {}
