"""Step-to-step spread of a Tent step on ResNet-50 (batch 16, one thread), entmin and the official code, in the
harness of bench_scale.py (same weights, inputs, lr): is the fp32 gap of BENCHMARKS.md section 12 larger than
the spread? ``official-eval`` leaves the official model in eval mode after its configure_model (train vs eval).
Needs the vision extra and the official files in $ENTMIN_OFFICIAL_DIR.

    for w in entmin official official-eval; do python benchmarks/tent_step_spread.py $w; done
"""
from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_scale as scale

from entmin.adapt import make_adapter


def main(which: str, steps: int = 3) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    xs = [torch.rand(16, 3, 224, 224, generator=g) for _ in range(steps + 1)]
    model = scale.build("resnet50")
    if which.startswith("official"):
        ad = scale.official_adapter("tent", model, "resnet50", None)
        if which == "official-eval":
            ad.model.eval()
    else:
        ad = make_adapter("tent", model, "em", optimizer={"lr": scale.LR["resnet50"]}, seed=1)
    times = []
    for x in xs:
        t0 = time.perf_counter()
        ad(x)
        times.append(time.perf_counter() - t0)
    print(which, "s per step after one warm-up:", [round(t, 2) for t in times[1:]])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "entmin")
