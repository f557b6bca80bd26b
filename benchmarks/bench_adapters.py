"""Throughput and peak memory of every adaptation method (issue 3), with EM and with AdaDEM, against plain
source inference, on the built-in models at batch 64.

    .venv/bin/python benchmarks/bench_adapters.py [--device cpu|cuda] [--batches 30] [--threads N]

Each (model, method, objective) runs in a fresh subprocess so that peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``, on CPU the peak resident set size of the process (ru_maxrss, includes
the Python interpreter and torch, about 300 MB). Prints a Markdown table with ratios to source and to Tent.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from entmin.adapt import make_adapter
from entmin.models import load_source_model
model_name, method, objective, device, batches, threads = sys.argv[1:7]
if int(threads): torch.set_num_threads(int(threads))
dev = torch.device(device)
model = load_source_model(model_name).to(dev)
kw = {} if method in ("source", "bn") else {"optimizer": {"lr": 1e-3}}
g = torch.Generator().manual_seed(0)
xs = [torch.rand(64, 1, 32, 32, generator=g).to(dev) for _ in range(int(batches))]
if method == "eata": kw["fisher_loader"] = xs[:4]
import math
E = math.log(10) + 1e-3  # every sample passes the entropy filters: time the full update path on every batch
if method in ("eta", "eata"): kw.update(e_margin=E, d_margin=2.0)
if method == "sar": kw["e_margin"] = E
if method == "deyo": kw.update(ent_margin=E, plpd_threshold=-1.0)
ad = make_adapter(method, model, objective, **kw)
for x in xs[:3]: ad(x)   # warm-up
if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
for x in xs: ad(x)
if dev.type == "cuda": torch.cuda.synchronize()
dt = time.perf_counter() - t
mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"ips": 64 * len(xs) / dt, "mem": mem}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--models", default="cnn,vit")
    args = ap.parse_args()
    runs = [("source", "em"), ("bn", "em")] + [(m, o) for m in ("tent", "eta", "eata", "sar", "deyo")
                                               for o in ("em", "adadem")]
    print(f"machine: {platform.machine()}, device {args.device}, batch 64, {args.batches} batches, "
          f"threads {args.threads or 'default'}\n")
    print("| model | method | objective | images/s | × source time | × Tent(EM) time | AdaDEM / host EM | peak mem (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        res = {}
        for method, obj in runs:
            if model == "vit" and method == "bn":
                continue
            out = subprocess.run([sys.executable, "-c", CHILD, model, method, obj, args.device, str(args.batches),
                                  str(args.threads)], capture_output=True, text=True, check=True)
            res[(method, obj)] = json.loads(out.stdout.strip().splitlines()[-1])
        src, tent = res[("source", "em")]["ips"], res[("tent", "em")]["ips"]
        for (method, obj), r in res.items():
            host = res.get((method, "em"), r)["ips"]
            ada = f"{host / r['ips']:.2f}" if obj == "adadem" else ""
            print(f"| {model} | {method} | {obj if method not in ('source', 'bn') else '-'} | {r['ips']:.0f} | "
                  f"{src / r['ips']:.2f} | {tent / r['ips']:.2f} | {ada} | {r['mem']:.0f} |")


if __name__ == "__main__":
    main()
