"""Section 21's ten-round table from results/streams.sqlite: for the `long` protocol at one image count, per model
and host, EM's mean accuracy over the stream, AdaDEM − EM over matched seeds with the seeds AdaDEM won (and each
seed's difference), the library's collapse flag, and the mean accuracy of every round (over the seeds), which shows
who drifts. Configurations finished on every seed asked for, default options only; built on `build_table`.
Usage: python benchmarks/long_rounds.py [store] [--n 100] [--rounds 10] [--seeds 1,2,3]"""
import argparse
from collections import defaultdict

import numpy as np

from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table

ORDER = ["source", "bn", "tent", "eta", "eata", "sar", "deyo"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store", nargs="?", default="results/streams.sqlite")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", default="1,2,3")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    cells = ResultStore(a.store, readonly=True).cells()
    got: dict[tuple, dict] = {}
    for e in build_table(cells, seeds=seeds):
        cfg = e["config"]
        if cfg["protocol"] == "long" and cfg["n_per_domain"] == a.n and cfg.get("rounds", 10) == a.rounds \
                and e["seeds"] == seeds and not cfg.get("objective_options") and not cfg.get("method_options") \
                and cfg.get("bank_update", "all") == "all" and cfg["objective"] in ("em", "adadem"):
            got[(cfg["model"], cfg["method"], cfg["objective"])] = e
    per_round: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    wanted = {e["hash"] for e in got.values()}
    for c in cells:
        if c["config_hash"] in wanted and c["seed"] in seeds:
            per_round[c["config_hash"]][c["position"] // len(c["config"]["corruptions"])].append(c["accuracy"])
    print(f"long protocol, {a.rounds} rounds, {a.n} images per corruption, seeds {a.seeds}\n")
    print("| model | host | objective | mean | AdaDEM − EM (seeds higher) [per seed] | collapsed seeds | "
          "per round |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(got, key=lambda k: (k[0], ORDER.index(k[1]), k[2] != "em")):
        e, em = got[key], got.get((key[0], key[1], "em"))
        delta = ""
        if key[2] == "adadem" and em:
            d = [e["seed_means"][s] - em["seed_means"][s] for s in seeds]
            delta = (f"{100 * np.mean(d):+.1f} ({sum(x > 0 for x in d)}/{len(d)}) "
                     f"[{', '.join(f'{100 * x:+.1f}' for x in d)}]")
        rounds = per_round[e["hash"]]
        trend = " / ".join(f"{100 * np.mean(rounds[r]):.1f}" for r in sorted(rounds))
        print(f"| {key[0]} | {key[1]} | {key[2] if key[1] not in ('source', 'bn') else '–'} | "
              f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f} | {delta} | {len(e['collapsed_seeds'])} | {trend} |")


if __name__ == "__main__":
    main()
