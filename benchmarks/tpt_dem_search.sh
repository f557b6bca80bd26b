#!/usr/bin/env bash
# DEM* for TPT on MiniCLIP (BENCHMARKS.md section 17): a grid over (tau, alpha) on 100 images per split that are
# disjoint from the 300 test images (--offset 300), seed 0, clean + 15 corruptions; the pair with the best mean
# accuracy there is then run on the test subset, TPT and TPT(CoOp), 3 seeds. Resumable (the store skips done blocks).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-results/tpt.sqlite}
SEARCH=(--offset 300 --n-images 100 --seeds 0 --store "$STORE")
.venv/bin/entmin tpt --methods tpt --objectives em "${SEARCH[@]}"
printf '%s\n' 0.6:0.5 0.6:1.0 0.6:2.0 0.8:0.5 0.8:1.0 0.8:2.0 1.0:0.5 1.0:1.0 1.0:2.0 1.2:0.5 1.2:1.0 1.2:2.0 |
  xargs -P "${JOBS:-2}" -I{} sh -c 'p={}; .venv/bin/entmin tpt --methods tpt --objectives dem --tau ${p%%:*} \
    --alpha ${p##*:} '"${SEARCH[*]}"
best=$(.venv/bin/python - "$STORE" <<'PY'
import sys
from collections import defaultdict
from entmin.bench.store import ResultStore
acc = defaultdict(lambda: [0, 0])
for r in ResultStore(sys.argv[1], readonly=True).get_records("tpt").values():
    c = r["config"]
    if c.get("offset") == 300 and c["method"] == "tpt" and c["objective"] == "dem":
        acc[(c["tau"], c["alpha"])][0] += r["correct"]
        acc[(c["tau"], c["alpha"])][1] += r["n"]
for (t, a), (k, n) in sorted(acc.items()):
    print(f"tau {t} alpha {a}: {100 * k / n:.2f}% ({n} images)", file=sys.stderr)
t, a = max(acc, key=lambda p: acc[p][0] / acc[p][1])
print(t, a)
PY
)
echo "DEM*: tau alpha = $best"
set -- $best
.venv/bin/entmin tpt --methods tpt,tpt-coop --objectives dem --tau "$1" --alpha "$2" --seeds 0,1,2 --n-images 300 \
  --jobs "${JOBS:-2}" --store "$STORE"
