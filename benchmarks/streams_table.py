"""Section 21's tables from results/streams.sqlite (benchmarks/streams_cpu.sh with METHODS=all): one table per
model, a row per stream, for each host EM's accuracy and AdaDEM − EM over matched seeds with how many seeds AdaDEM
won. Only configurations finished on every seed asked for are shown ("–" otherwise); the image count per domain
(per visit for gradual) is part of the row, so the seed-1 first look (section 14) never mixes in.
Usage: python benchmarks/streams_table.py [store] [--seeds 1,2,3] [--n 300] [--gradual-n 100]"""
import argparse
from collections import defaultdict

import numpy as np

from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table

HOSTS = ["tent", "eta", "eata", "sar", "deyo"]


def stream_label(cfg: dict) -> str:
    p = cfg["protocol"]
    if p == "label-shift":
        return f"label-shift δ={cfg.get('delta', 0.1):g}"
    if p == "long":
        return f"long ({cfg.get('rounds', 10)} rounds)"
    return "gradual (1-5-1)" if p == "gradual" else p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store", nargs="?", default="results/streams.sqlite")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--gradual-n", type=int, default=100)
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    entries = build_table(ResultStore(a.store, readonly=True).cells(), seeds=seeds)
    by_model: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for e in entries:
        cfg = e["config"]
        want_n = a.gradual_n if cfg["protocol"] == "gradual" else a.n
        if cfg["n_per_domain"] != want_n or cfg.get("objective_options") or cfg.get("method_options") \
                or cfg["objective"] not in ("em", "adadem") or e["seeds"] != seeds:
            continue
        obj = cfg["objective"] if cfg["method"] not in ("source", "bn") else "-"
        by_model[cfg["model"]][(stream_label(cfg), cfg["method"], obj)] = e
    order = ["mixed", "label-shift δ=0.01", "label-shift δ=0.1", "label-shift δ=1", "gradual (1-5-1)",
             "long (3 rounds)", "continual"]
    for model, got in sorted(by_model.items()):
        has_bn = any(k[1] == "bn" for k in got)
        print(f"\n{model}, seeds {a.seeds}, {a.n} images per corruption (gradual: {a.gradual_n} per visit)\n")
        head = ["stream", "source"] + (["BN"] if has_bn else [])
        for h in HOSTS:
            head += [f"{h} EM", "Δ AdaDEM"]
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for stream in [s for s in order if any(k[0] == s for k in got)]:
            row = [stream]
            for base in ["source"] + (["bn"] if has_bn else []):
                e = got.get((stream, base, "-"))
                row.append(f"{100 * e['mean']:.1f}" if e else "–")
            flags = 0
            for h in HOSTS:
                em, ada = got.get((stream, h, "em")), got.get((stream, h, "adadem"))
                flags += sum(len(x["collapsed_seeds"]) for x in (em, ada) if x)
                row.append(f"{100 * em['mean']:.1f}" if em else "–")
                if em and ada:
                    d = [ada["seed_means"][s] - em["seed_means"][s] for s in seeds]
                    row.append(f"{100 * np.mean(d):+.1f} ({sum(x > 0 for x in d)}/{len(d)})")
                else:
                    row.append("–")
            print("| " + " | ".join(row) + " |" + (f" ⚠ {flags} collapsed runs" if flags else ""))


if __name__ == "__main__":
    main()
