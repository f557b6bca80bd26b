"""Section 19's table from results/imbalanced.sqlite (benchmarks/imbalanced_cpu.sh and imbalanced_ablation_cpu.sh):
mean accuracy over the corruptions per host, objective, bank update and bank weight pi, for the i.i.d. (q = 1) and the
class-sorted (q = 500000) stream; mean ± std over the seeds that finished every corruption, and AdaDEM − EM over
matched seeds. Usage: python benchmarks/imbalanced_table.py [store]"""
import sys
from collections import defaultdict

import numpy as np

from entmin.bench.store import ResultStore


def main(path: str = "results/imbalanced.sqlite") -> None:
    cells = ResultStore(path, readonly=True).cells()
    acc: dict[tuple, dict[float, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    n_dom = {}
    for c in cells:
        cfg = c["config"]
        q = float(cfg.get("imbalance", 500000.0))
        pi = dict(cfg.get("objective_options") or {}).get("pi", 0.1)
        key = (cfg["method"], cfg["objective"], cfg.get("bank_update", "all"), pi)
        acc[key][q][c["seed"]].append(c["accuracy"])
        n_dom[key] = len(cfg["corruptions"])
    per_seed = {k: {q: {s: float(np.mean(v)) for s, v in seeds.items() if len(v) == n_dom[k]}
                    for q, seeds in qs.items()} for k, qs in acc.items()}

    def cell(k, q):
        v = per_seed.get(k, {}).get(q, {})
        return (f"{100 * np.mean(list(v.values())):.1f} ± {100 * np.std(list(v.values())):.1f} (n={len(v)})"
                if v else "–")

    def delta(k, q):
        em = per_seed.get((k[0], "em", "all", 0.1), {}).get(q, {})
        v = per_seed.get(k, {}).get(q, {})
        common = sorted(set(em) & set(v))
        return f"{100 * np.mean([v[s] - em[s] for s in common]):+.1f} (n={len(common)})" if common and k[1] != "em" else "–"
    order = ["source", "tent", "eta", "eata", "sar", "deyo"]
    print("| host | objective | bank update | π | i.i.d. (q = 1) | Δ vs EM | sorted (q = 500000) | Δ vs EM |")
    print("|---|---|---|---|---|---|---|---|")
    for k in sorted(per_seed, key=lambda k: (order.index(k[0]), k[1] != "em", k[2], -k[3])):
        label = "–" if k[0] == "source" else k[1]
        bank, pi = (k[2], f"{k[3]:g}") if k[1] == "adadem" else ("–", "–")
        print(f"| {k[0]} | {label} | {bank} | {pi} | {cell(k, 1.0)} | {delta(k, 1.0)} | {cell(k, 500000.0)} | "
              f"{delta(k, 500000.0)} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
