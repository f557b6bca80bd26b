"""Figures outside the benchmark tables: corruption contact sheet, reward curves, per-class F1 of the
training runs, estimated-vs-true accuracy scatter, the two phases of EM."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import finish, pyplot, save

__all__ = ["contact_sheet", "plot_per_class_f1", "plot_phases", "reward_figure", "scatter_plot"]


def contact_sheet(out: str | Path, index: int = 0, data_dir: str | None = None, cache_dir: str | None = None,
                  images: torch.Tensor | None = None) -> None:
    """Rows = the 15 corruptions, columns = clean + severities 1..5 of one test image."""
    from ..data.corruptions import CORRUPTIONS, corrupt
    from ..data.fashion_mnist import load_fashion_mnist

    plt = pyplot()
    if images is None:
        x, _ = load_fashion_mnist("test", data_dir)
        images = x[index:index + 1]
    fig, axes = plt.subplots(len(CORRUPTIONS), 6, figsize=(6 * 1.1, len(CORRUPTIONS) * 1.1))
    for i, name in enumerate(CORRUPTIONS):
        row = [images[0, 0]] + [corrupt(images, name, s, seed=0)[0, 0] for s in range(1, 6)]
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=6, rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title("clean" if j == 0 else f"sev {j}", fontsize=7)
    save(fig, out, dpi=110)


def reward_figure(out: str | Path, num_classes: int = 10) -> None:
    """Reward of the arg-max class vs its probability: EM collapses at both ends; CADF, DEM(tau) and
    AdaDEM keep rewarding confident predictions (paper Fig. 2 left, Fig. 3/4 left)."""
    import warnings

    from ..objectives import DEM, AdaDEM, cadf, entropy, reward_curve

    plt = pyplot()
    probs = torch.linspace(1.0 / num_classes + 1e-3, 0.999, 300, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(probs, reward_curve(entropy, probs, num_classes), label="EM (entropy)")
    ax.plot(probs, reward_curve(cadf, probs, num_classes), label="CADF only")
    ax.plot(probs, reward_curve(AdaDEM(num_classes).double(), probs, num_classes), label="AdaDEM (fresh bank)")
    ax.set_title("reward collapse: EM vs CADF vs AdaDEM")
    ax = axes[1]
    for tau in (0.5, 1.0, 1.5, 2.0):
        ax.plot(probs, reward_curve(DEM(tau, 1.0) if tau * 1.0 <= 2 else DEM(tau, 0.0), probs, num_classes),
                label=f"DEM(tau={tau}, alpha=1)")
    ax.set_title("temperature tau (CADF weights)")
    ax = axes[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for alpha in (0.0, 0.5, 1.0, 1.5, 2.0):
            ax.plot(probs, reward_curve(DEM(1.0, alpha), probs, num_classes), label=f"DEM(tau=1, alpha={alpha})")
    ax.set_title("GMC weight alpha")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel(f"probability of the arg-max class (C = {num_classes})")
        ax.set_ylabel("reward  -dL/dz_max")
        ax.legend(fontsize=7)
    save(fig, out, dpi=110)


def plot_per_class_f1(records: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Per-class F1 (mean over seeds), one line per method (the DEM paper's Fig. 5 analog)."""

    from ..training.report import group_training_records

    fig, ax = pyplot().subplots(figsize=(7, 4))
    for (_task, _model, setting, loss, _steps), rs in sorted(group_training_records(records).items()):
        f1 = np.mean([r["per_class_f1"] for r in rs], axis=0)
        ax.plot(range(len(f1)), f1, marker="o", label=f"{loss} ({setting}): mean {f1.mean():.3f}")
    finish(fig, ax, path, xlabel="class (0 = head ... 9 = tail)", ylabel="F1 on the balanced test set",
           title=title, legend_fontsize=7)


def scatter_plot(ests: dict[str, dict[str, float]], path: str | Path, title: str = "") -> None:
    from ..estimate.baselines import BASELINES
    from ..estimate.evaluate import FLIP_METHODS

    plt = pyplot()
    methods = list(BASELINES) + list(FLIP_METHODS)
    fig, axes = plt.subplots(2, 4, figsize=(14, 7), sharex=True, sharey=True)
    for ax, m in zip(axes.flat, methods):
        t = [100 * e["true"] for e in ests.values()]
        p = [100 * e[m] for e in ests.values()]
        ax.scatter(t, p, s=8)
        ax.plot([0, 100], [0, 100], color="grey", lw=0.7)
        ax.set_title(f"{m}: MAE {np.mean(np.abs(np.array(t) - np.array(p))):.1f}", fontsize=9)
        ax.set_xlabel("true accuracy (%)")
        ax.set_ylabel("estimated (%)")
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    fig.suptitle(title)
    save(fig, path, dpi=110)


def plot_phases(runs: dict[str, list[dict[str, float]]], path: str | Path, title: str = "") -> None:
    plt = pyplot()
    keys = [("accuracy", "accuracy"), ("distance_to_source_means", "distance to source class means (rel.)"),
            ("cluster_score", "cluster quality (between/within)")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for label, rows in runs.items():
        for ax, (k, name) in zip(axes, keys):
            ax.plot([r["step"] for r in rows], [r[k] for r in rows], label=label)
            ax.set_xlabel("adaptation step")
            ax.set_ylabel(name)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    save(fig, path, dpi=110)
