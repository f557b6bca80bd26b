"""The batch-size table of BENCHMARKS.md section 18 from results/batchsize.sqlite (benchmarks/batch_size_cpu.sh):
mean accuracy over the corruptions per host+objective (rows) and model x batch size (columns), mean over seeds;
then AdaDEM − EM per host over matched seeds.
Usage: python benchmarks/batch_size_table.py [store]"""
import sys
from collections import defaultdict

import numpy as np

from entmin.bench.store import ResultStore

NORM = {"cnn": "BN", "cnn_gn": "GN", "vit": "LN"}


def main(path: str = "results/batchsize.sqlite") -> None:
    cells = ResultStore(path, readonly=True).cells()
    acc: dict[tuple, dict[tuple, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for c in cells:
        cfg = c["config"]
        acc[(cfg["method"], cfg["objective"])][(cfg["model"], cfg["batch_size"])][c["seed"]].append(c["accuracy"])
    cols = sorted({k for v in acc.values() for k in v}, key=lambda k: (list(NORM).index(k[0]), -k[1]))
    order = ["source", "bn", "tent", "eta", "eata", "sar", "deyo"]
    print("| host | objective | " + " | ".join(f"{NORM[m]} bs {b}" for m, b in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for (method, obj) in sorted(acc, key=lambda k: (order.index(k[0]), k[1])):
        row = []
        for col in cols:
            seeds = acc[(method, obj)].get(col)
            n = len(cells[0]["config"]["corruptions"])
            done = seeds and all(len(v) == n for v in seeds.values())   # every corruption of every seed
            row.append(f"{100 * np.mean([np.mean(v) for v in seeds.values()]):.1f}" if done else "–")
        label = obj if method not in ("source", "bn") else "–"
        print(f"| {method} | {label} | " + " | ".join(row) + " |")
    print("\nAdaDEM − EM over matched seeds (seeds where AdaDEM is higher / seeds):\n")
    print("| host | " + " | ".join(f"{NORM[m]} bs {b}" for m, b in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for method in [m for m in order if (m, "em") in acc and m not in ("source", "bn")]:
        row = []
        for col in cols:
            em, ada = acc[(method, "em")].get(col, {}), acc.get((method, "adadem"), {}).get(col, {})
            n = len(cells[0]["config"]["corruptions"])
            common = [s for s in em if s in ada and len(em[s]) == n and len(ada[s]) == n]
            d = [np.mean(ada[s]) - np.mean(em[s]) for s in common]
            row.append(f"{100 * np.mean(d):+.1f} ({sum(x > 0 for x in d)}/{len(d)})" if d else "–")
        print(f"| {method} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
