"""Figures that are not benchmark tables: corruption contact sheet and reward curves."""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["contact_sheet", "reward_figure"]


from ._plotting import pyplot as _plt


def contact_sheet(out: str | Path, index: int = 0, data_dir: str | None = None, cache_dir: str | None = None,
                  images: torch.Tensor | None = None) -> None:
    """Rows = the 15 corruptions, columns = clean + severities 1..5 of one test image."""
    from .data.corruptions import CORRUPTIONS, corrupt
    from .data.fashion_mnist import load_fashion_mnist

    plt = _plt()
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
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def reward_figure(out: str | Path, num_classes: int = 10) -> None:
    """Reward of the arg-max class vs its probability: EM collapses at both ends; CADF, DEM(tau) and
    AdaDEM keep rewarding confident predictions (paper Fig. 2 left, Fig. 3/4 left)."""
    import warnings

    from .objectives import DEM, AdaDEM, cadf, entropy, reward_curve

    plt = _plt()
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
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
