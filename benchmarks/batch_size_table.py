"""The batch-size table of BENCHMARKS.md section 18 from results/batchsize.sqlite (benchmarks/batch_size_cpu.sh):
mean accuracy over the corruptions per host+objective (rows) and model x batch size (columns), mean over seeds;
then AdaDEM − EM per host over matched seeds. Seeds and their completeness come from `bench.tables.build_table`;
a column where any seed is unfinished shows "–".
Usage: python benchmarks/batch_size_table.py [store]"""
import sys

import numpy as np

from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table

NORM = {"cnn": "BN", "cnn_gn": "GN", "vit": "LN"}
ORDER = ["source", "bn", "tent", "eta", "eata", "sar", "deyo"]


def main(path: str = "results/batchsize.sqlite") -> None:
    got = {}          # (method, objective, model, batch size) -> build_table entry
    for e in build_table(ResultStore(path, readonly=True).cells()):
        cfg = e["config"]
        got[(cfg["method"], cfg["objective"], cfg["model"], cfg["batch_size"])] = e
    cols = sorted({k[2:] for k in got}, key=lambda k: (list(NORM).index(k[0]), -k[1]))
    rows = sorted({k[:2] for k in got}, key=lambda k: (ORDER.index(k[0]), k[1]))

    def finished(e):
        return e if e and e["seeds"] and not e["partial_seeds"] else None

    print("| host | objective | " + " | ".join(f"{NORM[m]} bs {b}" for m, b in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for method, obj in rows:
        cells = [finished(got.get((method, obj) + col)) for col in cols]
        label = obj if method not in ("source", "bn") else "–"
        print(f"| {method} | {label} | " + " | ".join(f"{100 * e['mean']:.1f}" if e else "–" for e in cells) + " |")
    print("\nAdaDEM − EM over matched seeds (seeds where AdaDEM is higher / seeds):\n")
    print("| host | " + " | ".join(f"{NORM[m]} bs {b}" for m, b in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for method in [m for m, o in rows if o == "em" and m not in ("source", "bn")]:
        row = []
        for col in cols:
            em, ada = got.get((method, "em") + col), got.get((method, "adadem") + col)
            common = sorted(set(em["seed_means"]) & set(ada["seed_means"])) if em and ada else []
            d = [ada["seed_means"][s] - em["seed_means"][s] for s in common]
            row.append(f"{100 * np.mean(d):+.1f} ({sum(x > 0 for x in d)}/{len(d)})" if d else "–")
        print(f"| {method} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
