"""Tables (Markdown, CSV) and plots (PNG) computed from the results store only."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = [
    "ABBREV",
    "build_table",
    "plot_class_distribution",
    "plot_continual_stream",
    "plot_per_corruption",
    "table_markdown",
    "write_csv",
]

ABBREV = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impul", "defocus_blur": "Defcs",
          "glass_blur": "Gls", "motion_blur": "Mtn", "zoom_blur": "Zm", "snow": "Snw", "frost": "Frst", "fog": "Fg",
          "brightness": "Brt", "contrast": "Cnt", "elastic_transform": "Els", "pixelate": "Px",
          "jpeg_compression": "Jpg", "clean": "Clean"}


def _key(cfg: dict[str, Any]) -> tuple:
    return (cfg["model"], cfg["protocol"], cfg["method"], cfg["objective"],
            tuple(sorted(cfg.get("objective_options", {}).items())), cfg.get("lr"))


def build_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per configuration: per-domain accuracy (mean over seeds) and mean +- std over seeds."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["config_hash"]].append(r)
    out = []
    for h, rs in groups.items():
        cfg = rs[0]["config"]
        domains = cfg["corruptions"]
        by_seed: dict[int, dict[str, float]] = defaultdict(dict)
        for r in rs:
            by_seed[r["seed"]][r["domain"]] = r["accuracy"]
        complete = {s: d for s, d in by_seed.items() if all(c in d for c in domains)}
        per_domain = {c: _mean([d[c] for d in by_seed.values() if c in d]) for c in domains}
        seed_means = [_mean(list(d.values())) for d in complete.values()]
        obj = cfg["objective"] + ("(" + ",".join(f"{k}={v}" for k, v in cfg["objective_options"].items()) + ")"
                                  if cfg.get("objective_options") else "")
        out.append({"hash": h, "config": cfg, "model": cfg["model"], "protocol": cfg["protocol"],
                    "method": cfg["method"], "objective": obj if cfg["method"] not in ("source", "bn") else "-",
                    "lr": cfg.get("lr"), "per_domain": per_domain, "mean": _mean(seed_means),
                    "std": _std(seed_means), "seeds": sorted(complete), "partial_seeds": sorted(set(by_seed) - set(complete)),
                    "wall_seconds": sum(r["wall_seconds"] for r in rs)})
    order = {"source": 0, "bn": 1, "tent": 2, "eta": 3, "eata": 4, "sar": 5, "deyo": 6}
    obj_order = {"-": 0, "em": 1, "dem": 2, "cadf": 3, "adadem_norm": 4, "adadem_mec": 5, "adadem_v": 6, "adadem": 7}
    out.sort(key=lambda e: (e["model"], e["protocol"], order.get(e["method"], 9),
                            obj_order.get(e["objective"].split("(")[0], 8), e["objective"], e["lr"] or 0))
    return out


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def _std(v: list[float]) -> float:
    if len(v) < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def table_markdown(entries: list[dict[str, Any]], *, per_domain: bool = True, show_lr: bool = True) -> str:
    """Paper-style table (accuracy %): one block per (model, protocol); delta against the host's EM row."""
    lines: list[str] = []
    blocks: dict[tuple, list] = defaultdict(list)
    for e in entries:
        blocks[(e["model"], e["protocol"])].append(e)
    for (model, protocol), es in blocks.items():
        domains = es[0]["config"]["corruptions"]
        lines.append(f"\n**{model}, {protocol}** (severity {es[0]['config']['severity']}, "
                     f"{es[0]['config']['n_per_domain'] or 'all'} images/domain, batch {es[0]['config']['batch_size']})\n")
        head = ["method", "objective"] + (["lr"] if show_lr else []) + (
            [ABBREV.get(d, d) for d in domains] if per_domain else []) + ["mean ± std", "Δ vs EM", "seeds"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        em = {(e["method"], e["lr"]): e["mean"] for e in es if e["objective"] == "em"}
        em_any = {e["method"]: e["mean"] for e in es if e["objective"] == "em"}
        for e in es:
            base = em.get((e["method"], e["lr"]), em_any.get(e["method"]))
            delta = "" if e["objective"] in ("em", "-") or base is None or math.isnan(e["mean"]) else \
                f"{100 * (e['mean'] - base):+.1f}"
            cells = [e["method"], e["objective"]] + ([f"{e['lr']:g}" if e["method"] not in ("source", "bn") else "-"]
                                                     if show_lr else [])
            if per_domain:
                cells += [f"{100 * e['per_domain'][d]:.1f}" for d in domains]
            cells += [f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}" if not math.isnan(e["mean"]) else "n/a",
                      delta, str(len(e["seeds"]))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).strip() + "\n"


def write_csv(entries: list[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    domains = sorted({d for e in entries for d in e["per_domain"]})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "protocol", "method", "objective", "lr", "mean", "std", "seeds"] + domains)
        for e in entries:
            w.writerow([e["model"], e["protocol"], e["method"], e["objective"], e["lr"], f"{e['mean']:.5f}",
                        f"{e['std']:.5f}", len(e["seeds"])] + [f"{e['per_domain'].get(d, float('nan')):.5f}"
                                                               for d in domains])


from .._plotting import finish
from .._plotting import pyplot as _plt


def plot_per_corruption(entries: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    plt = _plt()
    domains = entries[0]["config"]["corruptions"]
    fig, ax = plt.subplots(figsize=(max(8, len(domains) * 0.9), 4))
    width = 0.8 / max(1, len(entries))
    for i, e in enumerate(entries):
        xs = [j + i * width for j in range(len(domains))]
        ax.bar(xs, [100 * e["per_domain"][d] for d in domains], width, label=f"{e['method']}+{e['objective']}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(domains))], [ABBREV.get(d, d) for d in domains])
    finish(fig, ax, path, xlabel="corruption", ylabel="top-1 accuracy (%)", title=title, legend_fontsize=7)


def plot_continual_stream(rows: list[dict[str, Any]], path: str | Path, window: int = 10, title: str = "") -> None:
    """Batch accuracy along the continual stream (moving average), one line per configuration (seed 1st)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        if r["config"]["protocol"] == "continual":
            groups[r["config_hash"]].append(r)
    bounds_drawn = False
    for rs in groups.values():
        seed = min(r["seed"] for r in rs)
        rs = sorted((r for r in rs if r["seed"] == seed), key=lambda r: r["position"])
        acc, edges = [], []
        for r in rs:
            acc += r["metrics"]["batch_acc"]
            edges.append(len(acc))
        sm = [sum(acc[max(0, i - window + 1):i + 1]) / len(acc[max(0, i - window + 1):i + 1]) for i in range(len(acc))]
        cfg = rs[0]["config"]
        ax.plot([100 * a for a in sm], label=f"{cfg['method']}+{cfg['objective']} (lr {cfg['lr']:g})", lw=1)
        if not bounds_drawn:
            for e in edges[:-1]:
                ax.axvline(e, color="grey", lw=0.3)
            bounds_drawn = True
    finish(fig, ax, path, xlabel="batch along the stream (15 corruptions in order)",
           ylabel=f"accuracy (%), {window}-batch average", title=title, legend_fontsize=7)


def plot_class_distribution(rows_by_label: dict[str, list[int]], path: str | Path, title: str = "") -> None:
    """Sorted predicted-class proportions (the paper's easy-class-bias picture, Fig. 2 right)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, hist in rows_by_label.items():
        tot = sum(hist) or 1
        props = sorted((h / tot for h in hist), reverse=True)
        ax.plot(range(1, len(props) + 1), props, marker="o", label=label)
    ax.axhline(1 / max(1, len(next(iter(rows_by_label.values())))), color="grey", ls="--", lw=0.8,
               label="balanced (true)")
    finish(fig, ax, path, xlabel="predicted class, sorted by frequency", ylabel="proportion of predictions",
           title=title)


def lr_table_markdown(entries: list[dict[str, Any]], tolerance: float = 1.0) -> str:
    """Mean accuracy (%) per learning rate (rows) and method+objective (columns), per (model, protocol);
    ``mean ± std`` over seeds where there are several. Below each block, the *usable range* of every column:
    the rates whose accuracy is within ``tolerance`` points of that column's best (the paper's claim is that
    AdaDEM's range is 10x wider than EM's)."""
    lines: list[str] = []
    blocks: dict[tuple, list] = defaultdict(list)
    for e in entries:
        if e["method"] not in ("source", "bn"):
            blocks[(e["model"], e["protocol"])].append(e)
    for (model, protocol), es in sorted(blocks.items()):
        cols = sorted({f"{e['method']}+{e['objective']}" for e in es})
        lrs = sorted({e["lr"] for e in es})
        cell = {(f"{e['method']}+{e['objective']}", e["lr"]): e for e in es
                if not math.isnan(e["mean"])}
        seeds = sorted({len(e.get("seeds", ())) for e in cell.values()})
        lines.append(f"\n**{model}, {protocol}**: mean accuracy (%) over the corruptions vs learning rate"
                     + (f" ({'/'.join(map(str, seeds))} seeds, mean ± std)" if max(seeds, default=1) > 1 else "")
                     + "\n")
        lines.append("| lr | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        best = {c: max((cell[(c, lr)]["mean"] for lr in lrs if (c, lr) in cell), default=float("nan")) for c in cols}
        for lr in lrs:
            row = []
            for c in cols:
                e = cell.get((c, lr))
                if e is None:
                    row.append("")
                    continue
                v = f"{100 * e['mean']:.1f}"
                if len(e.get("seeds", ())) > 1:
                    v += f" ± {100 * e['std']:.1f}"
                row.append(f"**{v}**" if e["mean"] == best[c] else v)
            lines.append(f"| {lr:g} | " + " | ".join(row) + " |")
        lines.append("")
        for c in cols:
            grid = [lr for lr in lrs if (c, lr) in cell]
            if not grid:
                continue
            good = [100 * (best[c] - cell[(c, lr)]["mean"]) <= tolerance for lr in grid]
            lo = hi = next(i for i, lr in enumerate(grid) if cell[(c, lr)]["mean"] == best[c])
            while lo > 0 and good[lo - 1]:
                lo -= 1
            while hi < len(grid) - 1 and good[hi + 1]:
                hi += 1
            lines.append(f"- {c}: usable range (contiguous, within {tolerance:g} point of its best) "
                         f"{grid[lo]:g} – {grid[hi]:g} ({grid[hi] / grid[lo]:.0f}x)")
    return "\n".join(lines).strip() + "\n"


def plot_lr_sweep(entries: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Accuracy vs learning rate (log scale), one line per method+objective, std over seeds as error bars
    (the paper's Fig. 9 analog)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lines: dict[str, list] = defaultdict(list)
    for e in entries:
        if e["method"] not in ("source", "bn") and not math.isnan(e["mean"]):
            lines[f"{e['method']}+{e['objective']}"].append((e["lr"], 100 * e["mean"], 100 * e.get("std", 0.0)))
    for label, pts in sorted(lines.items()):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=2,
                    label=label)
    ax.set_xscale("log")
    finish(fig, ax, path, xlabel="learning rate", ylabel="mean top-1 accuracy (%)", title=title, legend_fontsize=7)


def dem_star_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    """DEM* rows from the search records (``entmin search``): (tau*, alpha*), the search accuracy on the
    labelled 20%, and DEM*, EM and AdaDEM on the held-out 80% of the same streams."""
    lines = [("| model | protocol | host | τ* | α* | trials | images/corruption | lr | search 20% | DEM* 80% | "
              "EM 80% | AdaDEM 80% | AdaDEM − DEM* |"), "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(records, key=lambda k: (k.split(":")[1], k.split(":")[2], k.split(":")[0])):
        method, model, protocol = key.split(":")[:3]
        r = records[key]
        held = r.get("holdout_accuracy") or {}
        cells = [f"{100 * held[k]:.1f}" if k in held else "–" for k in ("DEM*", "EM", "AdaDEM")]
        gap = f"{100 * (held['AdaDEM'] - held['DEM*']):+.1f}" if len(held) == 3 else "–"
        n = r.get("n_per_domain", "–")
        lines.append(f"| {model} | {protocol} | {method} | {r['tau']:.1f} | {r['alpha']:.1f} | {r['trials']} | "
                     f"{'all' if n is None else n} | {r.get('lr', '–')} | "
                     f"{100 * r['search_accuracy']:.1f} | {' | '.join(cells)} | {gap} |")
    return "\n".join(lines) + "\n"
