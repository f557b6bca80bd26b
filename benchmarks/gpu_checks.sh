#!/usr/bin/env bash
# The GPU path on a CUDA machine: CUDA-vs-CPU tests, objective and adapter timings, cache build time,
# and the wall time of one full-size continual run. Writes logs to $OUT (default results/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}; mkdir -p "$OUT"
source benchmarks/gpu_env.sh
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
  python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/machine.txt"
( time $ENTMIN corrupt --workers "$(nproc)" ) 2>&1 | tail -4 | tee "$OUT/corrupt_time.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15 | tee "$OUT/test_cuda.log"
python3 benchmarks/bench_objectives.py --device cuda 2>&1 | tee "$OUT/bench_objectives_cuda.md"
python3 benchmarks/bench_adapters.py --device cuda --batches 100 2>&1 | tee "$OUT/bench_adapters_cuda.md"
for m in cnn vit; do
  ( time $ENTMIN run --method tent --objective adadem --model $m --protocol continual --device cuda --threads 1 ) \
    2>&1 | tail -8 | tee -a "$OUT/full_run_time.txt"
done
