"""Benchmark figures, drawn from table entries (:func:`entmin.bench.tables.build_table`) and store cells."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import colour, finish, pyplot, save

__all__ = ["plot_accuracy_heatmap", "plot_class_distribution", "plot_continual_stream", "plot_lr_sweep",
           "plot_per_corruption"]


def _abbrev(d: str) -> str:
    from ..bench.tables import ABBREV

    return ABBREV.get(d, d)


def plot_per_corruption(entries: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Small multiples: one panel per host, its objectives side by side per domain (AdaDEM in a lighter,
    hatched shade of the host's colour), the source model (and BN-adapt) as reference marks."""
    plt = pyplot()
    domains = list(dict.fromkeys(entries[0]["config"]["corruptions"]))
    refs = [e for e in entries if e["method"] in ("source", "bn")]
    hosts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if e["method"] not in ("source", "bn"):
            hosts[e["method"]].append(e)
    if not hosts:  # only reference rows: one panel of them
        hosts = {"reference": refs}
        refs = []
    fig, axes = plt.subplots(len(hosts), 1, figsize=(max(8, 0.75 * len(domains) + 2), 2.4 * len(hosts) + 0.6),
                             sharex=True, squeeze=False)
    xs = list(range(len(domains)))
    for ax, (host, es) in zip(axes[:, 0], hosts.items()):
        width = 0.8 / max(1, len(es))
        for i, e in enumerate(es):
            obj = e["objective"]
            ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], [100 * e["per_domain"][d] for d in domains], width,
                   color=colour(e["method"], obj), hatch="//" if obj.startswith("adadem") else None,
                   edgecolor="white", linewidth=0.3,
                   label=f"{e['method']}+{obj}" if e["method"] not in ("source", "bn") else e["method"])
        for r, marker in zip(refs, ("_", "x")):
            ax.scatter(xs, [100 * r["per_domain"][d] for d in domains], marker=marker, s=120 if marker == "_" else 25,
                       color=colour(r["method"]), zorder=3, label=r["method"])
        ax.set_ylabel("accuracy (%)")
        ax.set_title(host, fontsize=9, loc="left")
        ax.legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.grid(axis="y", lw=0.3)
    axes[-1, 0].set_xticks(xs, [_abbrev(d) for d in domains])
    fig.suptitle(title)
    save(fig, path)


def plot_accuracy_heatmap(entries: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Two heatmaps, rows = method+objective, columns = domains and the mean: accuracy (%) and the difference
    to the same host with EM (points; blue = better than EM)."""
    plt = pyplot()
    domains = list(dict.fromkeys(entries[0]["config"]["corruptions"]))
    labels = [e["method"] if e["method"] in ("source", "bn") else f"{e['method']}+{e['objective']}" for e in entries]
    acc = [[100 * e["per_domain"][d] for d in domains] + [100 * e["mean"]] for e in entries]
    em = {e["method"]: e for e in entries if e["objective"] == "em"}
    delta = []
    for e, row in zip(entries, acc):
        base = em.get(e["method"])
        if base is None or e["objective"] in ("em", "-"):
            delta.append([math.nan] * len(row))
        else:
            ref = [100 * base["per_domain"][d] for d in domains] + [100 * base["mean"]]
            delta.append([a - b for a, b in zip(row, ref)])
    cols = [_abbrev(d) for d in domains] + ["mean"]
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.45 * len(cols) + 2.5), 0.35 * len(entries) + 1.6))
    lim = max([abs(v) for r in delta for v in r if not math.isnan(v)] or [1.0])
    for ax, data, cmap, vmin, vmax, name in ((axes[0], acc, "viridis", 0, 100, "accuracy (%)"),
                                             (axes[1], delta, "RdBu", -lim, lim, "Δ vs the host with EM (points)")):
        im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=60, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.0f}" if name.startswith("acc") else f"{v:+.1f}", ha="center", va="center",
                            fontsize=5.5, color="white" if name.startswith("acc") and v < 60 else "black")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03)
    fig.suptitle(title)
    save(fig, path)


def plot_continual_stream(rows: list[dict[str, Any]], path: str | Path, window: int = 10, title: str = "") -> None:
    """Batch accuracy along the stream (moving average), one line per configuration (its first seed), domain
    boundaries as thin lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
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
        label = cfg["method"] if cfg["method"] in ("source", "bn") else f"{cfg['method']}+{cfg['objective']}"
        ax.plot([100 * a for a in sm], label=f"{label} (lr {cfg['lr']:g})", lw=1,
                color=colour(cfg["method"], cfg["objective"]),
                ls="--" if cfg["objective"].startswith("adadem") else "-")
        if not bounds_drawn:
            for e in edges[:-1]:
                ax.axvline(e, color="grey", lw=0.3)
            bounds_drawn = True
    finish(fig, ax, path, xlabel="batch along the stream (domains in order)",
           ylabel=f"accuracy (%), {window}-batch average", title=title, legend_fontsize=7)


def plot_class_distribution(rows_by_label: dict[str, list[int]], path: str | Path, title: str = "") -> None:
    """Sorted predicted-class proportions (the paper's easy-class-bias picture, Fig. 2 right)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, hist in rows_by_label.items():
        tot = sum(hist) or 1
        props = sorted((h / tot for h in hist), reverse=True)
        method, _, obj = label.partition("+")
        ax.plot(range(1, len(props) + 1), props, marker="o", label=label, color=colour(method, obj or "em"),
                ls="--" if obj.startswith("adadem") else "-")
    ax.axhline(1 / max(1, len(next(iter(rows_by_label.values())))), color="grey", ls=":", lw=0.8,
               label="balanced (true)")
    finish(fig, ax, path, xlabel="predicted class, sorted by frequency", ylabel="proportion of predictions",
           title=title)


def plot_lr_sweep(entries: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Accuracy vs learning rate (log scale), one line per method+objective, std over seeds as error bars
    (the paper's Fig. 9 analog)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lines: dict[tuple[str, str], list] = defaultdict(list)
    for e in entries:
        if e["method"] not in ("source", "bn") and not math.isnan(e["mean"]):
            lines[(e["method"], e["objective"])].append((e["lr"], 100 * e["mean"], 100 * e.get("std", 0.0)))
    for i, ((method, obj), pts) in enumerate(sorted(lines.items())):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="os^Dv"[i % 5],
                    capsize=2, label=f"{method}+{obj}")
    ax.set_xscale("log")
    finish(fig, ax, path, xlabel="learning rate", ylabel="mean top-1 accuracy (%)", title=title, legend_fontsize=7)
