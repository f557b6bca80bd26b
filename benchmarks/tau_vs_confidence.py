"""The paper's tau finding (issue 6, dem_spec.md section 4): per corruption, the DEM* temperature tau found
by TPE against the source model's mean max-probability on that corruption, as a table, a correlation
(Pearson and Spearman, scipy) and a scatter plot.

    .venv/bin/python benchmarks/tau_vs_confidence.py --model vit --method tent --trials 12 \
        --n-per-domain 2000 --out results/tau

One single-domain search per corruption (20% of its images labelled for the search, as for DEM*); resumable
(the studies and runs live in <out>/studies.sqlite and <out>/runs.sqlite).

``--alpha A`` instead scans tau alone over ``--taus`` with alpha fixed at A (the authors' cheap recipe,
dem_spec.md section 4): the joint (tau, alpha) search confounds tau* with alpha (alpha = 0 makes the
objective the bare CADF term, whose best tau is then a different question).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from scipy import stats

from entmin.bench.config import RunConfig
from entmin.bench.runner import run_experiment, summarize
from entmin.bench.store import ResultStore
from entmin.data.cache import FMNISTC
from entmin.data.corruptions import CORRUPTIONS
from entmin.estimate.evaluate import predict_logits
from entmin.models.checkpoints import load_source_model
from entmin.search import holdout_accuracy, search_dem
from entmin.viz import finish, pyplot


def scan_tau(base: RunConfig, store: ResultStore, alpha: float, taus: list[float], device: str) -> dict:
    """DEM(tau, alpha) for each tau on the search split; the best tau, then DEM(tau*), EM and AdaDEM on the
    held-out split (the same report as a DEM* search)."""
    def acc(cfg: RunConfig) -> float:
        return summarize(run_experiment(cfg, (1,), store, device=device))["mean"]

    def dem_search(tau: float) -> RunConfig:
        return dataclasses.replace(base, objective="dem", split="search",
                                   objective_options=(("alpha", alpha), ("tau", tau)))

    scores = {t: acc(dem_search(t)) for t in taus}
    best = max(taus, key=lambda t: (scores[t], -abs(t - 1.0)))  # ties: the tau closest to EM's 1
    held = holdout_accuracy(base, store, best, alpha, run_kwargs={"device": device})
    return {"tau": best, "alpha": alpha, "search_accuracy": scores[best], "holdout_accuracy": held,
            "scan": {str(t): v for t, v in scores.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit")
    ap.add_argument("--method", default="tent")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--n-per-domain", type=int, default=2000)
    ap.add_argument("--severity", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/tau")
    ap.add_argument("--alpha", type=float, default=None, help="fix alpha and scan tau over --taus")
    ap.add_argument("--taus", default="0.25,0.5,0.75,1.0,1.25,1.5,1.75,2.0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "runs.sqlite")
    data = FMNISTC()
    source = load_source_model(args.model).to(args.device).eval()
    rows = []
    for c in CORRUPTIONS:
        x, _ = data.load(c, args.severity)
        conf = float(predict_logits(source, x, args.device).softmax(1).max(1).values.mean())
        base = RunConfig(method=args.method, model=args.model, protocol="single", severity=args.severity,
                         corruptions=(c,), n_per_domain=args.n_per_domain)
        if args.alpha is None:
            res = search_dem(base, store, trials=args.trials, study_path=out / "studies.sqlite",
                             run_kwargs={"device": args.device})
        else:
            res = scan_tau(base, store, args.alpha, [float(t) for t in args.taus.split(",")], args.device)
        rows.append({"corruption": c, "mean_max_prob": conf, "tau": res["tau"], "alpha": res["alpha"],
                     "search_accuracy": res["search_accuracy"], "holdout": res["holdout_accuracy"],
                     "scan": res.get("scan")})
        print(json.dumps(rows[-1]), flush=True)
    conf = [r["mean_max_prob"] for r in rows]
    tau = [r["tau"] for r in rows]
    pearson, spearman = stats.pearsonr(conf, tau), stats.spearmanr(conf, tau)
    how = (f"{args.trials} TPE trials per corruption" if args.alpha is None
           else f"tau scanned over {args.taus} at alpha = {args.alpha}")
    tag = f"{args.model}_{args.method}" + ("" if args.alpha is None else f"_alpha{args.alpha:g}")
    lines = [(f"{args.model}, {args.method}, severity {args.severity}, {args.n_per_domain} images per corruption, "
              f"{how}"),
             "", "| corruption | source mean max-prob | τ* | α* | DEM* (80%) | EM (80%) | AdaDEM (80%) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['corruption']} | {r['mean_max_prob']:.3f} | {r['tau']:g} | {r['alpha']:g} | "
              f"{100 * r['holdout']['DEM*']:.1f} | {100 * r['holdout']['EM']:.1f} | {100 * r['holdout']['AdaDEM']:.1f} |"
              for r in rows]
    lines += ["", (f"Pearson r = {pearson.statistic:.3f} (p = {pearson.pvalue:.3f}); "
                   f"Spearman ρ = {spearman.statistic:.3f} (p = {spearman.pvalue:.3f}), n = {len(rows)}")]
    (out / f"tau_{tag}.md").write_text("\n".join(lines) + "\n")
    (out / f"tau_{tag}.json").write_text(json.dumps(rows, indent=1))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(conf, tau, label=f"one corruption (severity {args.severity})")
    # points share a tau (a grid value), so labels of neighbours would overlap: stagger them vertically by rank
    for i, r in enumerate(sorted(rows, key=lambda r: (r["tau"], r["mean_max_prob"]))):
        ax.annotate(r["corruption"][:5], (r["mean_max_prob"], r["tau"]), fontsize=7, textcoords="offset points",
                    xytext=(3, 4 + 9 * (i % 3)), arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"})
    finish(fig, ax, out / f"tau_{tag}.png", xlabel="source model's mean max-probability",
           ylabel="best τ (DEM*)", title=f"{args.model}/{args.method}: Pearson r = {pearson.statistic:.2f}, "
                                                 f"Spearman ρ = {spearman.statistic:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
