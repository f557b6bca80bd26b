"""Host x objective x learning rate from a results store: each objective's mean accuracy over the stream at every
learning rate the store holds (configurations finished on every seed asked for, default options only), with
objective − EM over matched seeds, each objective's best learning rate and the library's collapse flag. Built on `bench.tables.build_table`.
Section 22 (MNIST): python benchmarks/lr_table.py results/mnist/mnist.sqlite --methods eta,eata,deyo --n 500 \
                    --objectives em,adadem,adadem_norm,adadem_mec [--per-seed]
Section 23 (BN CNN, mixed): python benchmarks/lr_table.py results/streams.sqlite --model cnn --protocol mixed --n 300 \
                            --objectives em,adadem,adadem_norm,adadem_mec"""
import argparse
from collections import defaultdict

import numpy as np

from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--methods", default="tent,eta,eata,sar,deyo")
    ap.add_argument("--objectives", default="em,adadem", help="comma list; EM first (the reference)")
    ap.add_argument("--model", default=None, help="model name in the store (default: any)")
    ap.add_argument("--protocol", default="continual")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--n", type=int, default=None, help="images per domain (default: any)")
    ap.add_argument("--per-seed", action="store_true", help="also list each configuration's seed means")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    objectives = a.objectives.split(",")
    got: dict[str, dict[tuple, dict]] = defaultdict(dict)
    source = None
    for e in build_table(ResultStore(a.store, readonly=True).cells(), seeds=seeds):
        cfg = e["config"]
        if e["seeds"] != seeds or cfg["protocol"] != a.protocol or (a.n and cfg["n_per_domain"] != a.n) \
                or (a.model and cfg["model"] != a.model) or cfg.get("objective_options") or cfg.get("method_options") \
                or cfg.get("bank_update", "all") != "all":
            continue
        if cfg["method"] == "source":
            source = e["mean"]
        elif cfg["method"] in a.methods.split(",") and cfg["objective"] in objectives:
            got[cfg["method"]][(cfg["objective"], cfg["lr"])] = e
    lrs = sorted({lr for rows in got.values() for _, lr in rows})
    if source is not None:
        print(f"source model: {100 * source:.1f}\n")
    print("| host | objective | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | best |")
    print("|---|---|" + "---|" * (len(lrs) + 1))
    for host in [m for m in a.methods.split(",") if m in got]:
        rows = got[host]
        for obj in objectives:
            cells, best = [], max(((e["mean"], lr) for (o, lr), e in rows.items() if o == obj), default=None)
            for lr in lrs:
                e, em = rows.get((obj, lr)), rows.get(("em", lr))
                if not e:
                    cells.append("–")
                    continue
                flag = f" ⚠ collapse in {len(e['collapsed_seeds'])}" if e["collapsed_seeds"] else ""
                if obj == "em":
                    cells.append(f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}{flag}")
                else:
                    d = [e["seed_means"][s] - em["seed_means"][s] for s in seeds] if em else []
                    cells.append(f"{100 * e['mean']:.1f}" + (f" ({100 * np.mean(d):+.1f})" if d else "") + flag)
            best_cell = f"{100 * best[0]:.1f} at {best[1]:g}" if best else "–"
            print(f"| {host} | {obj} | " + " | ".join(cells) + f" | {best_cell} |")
    if a.per_seed:
        print()
        for host in [m for m in a.methods.split(",") if m in got]:
            for (obj, lr), e in sorted(got[host].items(), key=lambda kv: (objectives.index(kv[0][0]), kv[0][1])):
                print(f"{host} {obj} lr {lr:g}: " + " / ".join(f"{100 * e['seed_means'][s]:.1f}" for s in seeds))


if __name__ == "__main__":
    main()
