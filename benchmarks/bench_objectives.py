"""Forward+backward time of the objectives (issue 2): entropy, dem, AdaDEM (vectorised bank), and the
paper-style AdaDEM with a Python loop over the classes present in the batch, at C = 10 and C = 1000.

    .venv/bin/python benchmarks/bench_objectives.py [--device cpu|cuda] [--threads N]

Prints a Markdown table (median of torch.utils.benchmark's blocked autorange).
"""
from __future__ import annotations

import argparse
import platform

import torch
from torch.utils import benchmark

from entmin.objectives import AdaDEM, dem, entropy


class LoopAdaDEM:
    """The paper's pseudo-code (dem_spec.md 1.7): one bank update per present class in a Python loop."""

    def __init__(self, c: int, device) -> None:
        self.bank = torch.full((c, c), 1.0 / c, device=device)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        p = z.softmax(1)
        k = p.argmax(1)
        with torch.no_grad():
            for c in k.unique():
                self.bank[c] = 0.9 * self.bank[c] + 0.1 * p[k == c].mean(0)
            t = -(p * z).sum(1, keepdim=True)
            delta = (p * (z + t + 1)).abs().sum(1, keepdim=True)
        return -(((p - self.bank[k]) / delta) * z).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    rows = []
    for n, c in ((64, 10), (64, 1000)):
        z0 = torch.randn(n, c, device=dev) * 3
        ada = AdaDEM(c).to(dev)
        loop = LoopAdaDEM(c, dev)
        fns = {"entropy (EM)": entropy, "dem(τ=1.2, α=0.8)": lambda z: dem(z, 1.2, 0.8), "AdaDEM": ada,
               "AdaDEM, per-class loop (paper style)": loop}
        times = {}
        for name, fn in fns.items():
            z = z0.clone().requires_grad_(True)
            t = benchmark.Timer("fn(z).mean().backward()", globals={"fn": fn, "z": z}).blocked_autorange(min_run_time=1.0)
            times[name] = t.median * 1e6
        for name, us in times.items():
            rows.append((n, c, name, us, us / times["entropy (EM)"]))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, device {dev}\n")
    print("| N | C | objective | forward+backward (µs) | × EM |")
    print("|---|---|---|---|---|")
    for n, c, name, us, ratio in rows:
        print(f"| {n} | {c} | {name} | {us:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
