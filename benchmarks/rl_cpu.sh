#!/usr/bin/env bash
# The RL benchmark of BENCHMARKS.md section 15 on a 2-core CPU machine (two cells at a time, one thread each).
# Resumable: rerun the same command after a kill and only unfinished cells run (long ones from their last
# checkpoint, bit-exactly). The five environments whose zoo budget is <= 1e6 steps run at the zoo's budget;
# the four others at a stated reduction (--max-timesteps 1e5; zoo: 5e6-1e7).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/rl.sqlite}
SEEDS=${SEEDS:-0,1,2}
.venv/bin/entmin rl --envs DoorKey-5x5,Empty-Random-5x5,Unlock,KeyCorridorS3R1,RedBlueDoors-6x6 \
  --objectives em,adadem --seeds "$SEEDS" --jobs 2 --store "$STORE"
.venv/bin/entmin rl --envs FourRooms,Fetch-5x5-N2,GoToDoor-5x5,PutNear-6x6-N2 --max-timesteps 1e5 \
  --objectives em,adadem --seeds "$SEEDS" --jobs 2 --store "$STORE"
.venv/bin/entmin report --store "$STORE" --out results/rl_report
