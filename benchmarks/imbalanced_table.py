"""Section 19's table from results/imbalanced.sqlite (benchmarks/imbalanced_cpu.sh and imbalanced_ablation_cpu.sh):
mean accuracy over the corruptions per host, objective, bank update and bank weight pi, for the i.i.d. (q = 1) and the
class-sorted (q = 500000) stream; mean ± std over the seeds that finished every corruption and AdaDEM − EM over
matched seeds, both from `bench.tables.build_table` (sample std, the library's "finished" rule).
Usage: python benchmarks/imbalanced_table.py [store]"""
import sys

import numpy as np

from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table

ORDER = ["source", "tent", "eta", "eata", "sar", "deyo"]


def row_key(cfg: dict) -> tuple:
    """(host, objective, bank update, pi): the row a configuration belongs to."""
    pi = dict(cfg.get("objective_options") or {}).get("pi", 0.1)
    return cfg["method"], cfg["objective"], cfg.get("bank_update", "all"), pi


def main(path: str = "results/imbalanced.sqlite") -> None:
    entries: dict[tuple, dict[float, dict]] = {}
    for e in build_table(ResultStore(path, readonly=True).cells()):
        if e["seeds"]:
            entries.setdefault(row_key(e["config"]), {})[float(e["config"].get("imbalance", 500000.0))] = e

    def cell(k, q):
        e = entries[k].get(q)
        return f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f} (n={len(e['seeds'])})" if e else "–"

    def delta(k, q):
        em, e = entries.get((k[0], "em", "all", 0.1), {}).get(q), entries[k].get(q)
        if k[1] == "em" or not em or not e:
            return "–"
        common = sorted(set(em["seed_means"]) & set(e["seed_means"]))
        d = [e["seed_means"][s] - em["seed_means"][s] for s in common]
        return f"{100 * np.mean(d):+.1f} (n={len(common)})" if common else "–"
    print("| host | objective | bank update | π | i.i.d. (q = 1) | Δ vs EM | sorted (q = 500000) | Δ vs EM |")
    print("|---|---|---|---|---|---|---|---|")
    for k in sorted(entries, key=lambda k: (ORDER.index(k[0]), k[1] != "em", k[2], -k[3])):
        label = "–" if k[0] == "source" else k[1]
        bank, pi = (k[2], f"{k[3]:g}") if k[1] == "adadem" else ("–", "–")
        print(f"| {k[0]} | {label} | {bank} | {pi} | {cell(k, 1.0)} | {delta(k, 1.0)} | {cell(k, 500000.0)} | "
              f"{delta(k, 500000.0)} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
