#!/usr/bin/env bash
# The RL benchmark of BENCHMARKS.md section 15 on a 2-core CPU machine. Resumable: rerun after a kill and only
# unfinished cells run (long ones from their last checkpoint, bit-exactly).
#  * zoo budget: DoorKey-5x5, Empty-Random-5x5, Unlock (1e5), KeyCorridorS3R1 (5e5); two cells at a time;
#  * stated reductions: RedBlueDoors-6x6 at 2.5e5 (zoo 1e6; `--envs RedBlueDoors-6x6` without the cap runs the
#    zoo's budget, ~1.5 h more on 2 cores), and FourRooms, Fetch-5x5-N2, GoToDoor-5x5, PutNear-6x6-N2 at 5e4
#    (zoo 5e6-1e7), in a third process alongside.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/rl.sqlite}
SEEDS=${SEEDS:-0,1,2}
RL=(.venv/bin/entmin rl --objectives em,adadem --seeds "$SEEDS" --store "$STORE")
"${RL[@]}" --envs FourRooms,Fetch-5x5-N2,GoToDoor-5x5,PutNear-6x6-N2 --max-timesteps 5e4 --jobs 1 &
"${RL[@]}" --envs DoorKey-5x5,Empty-Random-5x5,Unlock,KeyCorridorS3R1 --jobs 2
"${RL[@]}" --envs RedBlueDoors-6x6 --max-timesteps 2.5e5 --jobs 2
wait
.venv/bin/entmin report --store "$STORE" --out results/rl_report
