#!/usr/bin/env bash
# The RL benchmark of BENCHMARKS.md section 15 on a 2-core CPU machine. Resumable: rerun after a kill and only
# unfinished cells run (long ones from their last checkpoint, bit-exactly). The five environments whose zoo
# budget is <= 1e6 steps run at the zoo's budget (two cells at a time, one thread each); the four others at a
# stated reduction (--max-timesteps 5e4; zoo: 5e6-1e7), in a third process alongside.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/rl.sqlite}
SEEDS=${SEEDS:-0,1,2}
.venv/bin/entmin rl --envs FourRooms,Fetch-5x5-N2,GoToDoor-5x5,PutNear-6x6-N2 --max-timesteps 5e4 \
  --objectives em,adadem --seeds "$SEEDS" --jobs 1 --store "$STORE" &
.venv/bin/entmin rl --envs DoorKey-5x5,Empty-Random-5x5,Unlock,KeyCorridorS3R1,RedBlueDoors-6x6 \
  --objectives em,adadem --seeds "$SEEDS" --jobs 2 --store "$STORE"
wait
.venv/bin/entmin report --store "$STORE" --out results/rl_report
