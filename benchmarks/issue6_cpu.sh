#!/usr/bin/env bash
# The DEM*, tau-vs-confidence and learning-rate measurements of BENCHMARKS.md sections 5, 8 and 9 that were
# run on the 2-core CPU machine (no GPU): two queues side by side, one thread each. Every step is resumable
# (Optuna studies and results stores in SQLite): rerun to continue. ~2.5 h on 2 cores.
#   bash benchmarks/issue6_cpu.sh            # both queues in the background, logs in $R/queue{A,B}.log
set -euo pipefail
cd "$(dirname "$0")/.."
R=${RESULTS:-results/cpu}
mkdir -p "$R"
E=".venv/bin/entmin"
PY=".venv/bin/python"
C="--device cpu --threads 1"

queue_a() {  # DEM* on the ViT (Tent at the main table's 2,000 images), the tau scan at alpha = 1, ETA (1,000)
  for p in single continual; do
    $E search --method tent --model vit --protocol $p --trials 10 --seeds 1 --n-per-domain 2000 \
      --store $R/search_runs.sqlite --study $R/study-vit-tent-$p.sqlite $C
  done
  $PY benchmarks/tau_vs_confidence.py --model vit --method tent --alpha 1.0 --n-per-domain 2000 --out $R/tau $C
  $E search --method eta --model vit --protocol continual --trials 8 --seeds 1 --n-per-domain 1000 \
    --store $R/search_runs.sqlite --study $R/study-vit-eta-continual.sqlite $C
  # not reached in the session (time): SAR, DeYO — same command, other --method/--protocol
}

queue_c() {  # run after a and b in the session: ETA / EATA single-domain at 1,000 images
  for m in eta eata; do
    $E search --method $m --model vit --protocol single --trials 8 --seeds 1 --n-per-domain 1000 \
      --store $R/search_runs.sqlite --study $R/study-vit-$m-single.sqlite $C
  done
}

queue_b() {  # joint tau search, the 3-seed learning-rate sweep of both models, EATA's DEM* (1,000)
  $PY benchmarks/tau_vs_confidence.py --model vit --method tent --trials 10 --n-per-domain 2000 --out $R/tau $C
  for p in continual single; do for seed in 1 2 3; do for model in vit cnn; do
    $E sweep --methods tent --lrs 1e-4,1e-3,1e-2,5e-2,1e-1 --protocols $p --models $model \
      --seeds $seed --n-per-domain 300 --store $R/sweep.sqlite --out $R/sweep $C
  done; done; done
  for model in vit cnn; do  # every cell is in the store now: this only writes the 3-seed tables and plots
    $E sweep --methods tent --lrs 1e-4,1e-3,1e-2,5e-2,1e-1 --protocols single,continual --models $model \
      --seeds 1,2,3 --n-per-domain 300 --store $R/sweep.sqlite --out $R/sweep3 $C > $R/lr_$model.md
  done
  $E search --method eata --model vit --protocol continual --trials 8 --seeds 1 --n-per-domain 1000 \
    --store $R/search_runs.sqlite --study $R/study-vit-eata-continual.sqlite $C
}

queue_a > "$R/queueA.log" 2>&1 &
queue_b > "$R/queueB.log" 2>&1 &
wait
queue_c > "$R/queueC.log" 2>&1
$E report --store $R/search_runs.sqlite --out $R/search   # dem_star.md
