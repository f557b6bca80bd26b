"""Every figure of entmin, in one style: the Agg backend, one colour per host (AdaDEM a lighter, hatched
shade of its host's colour), the same sizes and the same finishing steps.

* :mod:`entmin.viz.bench`: benchmark figures (per-domain small multiples, accuracy/Δ heatmaps, the stream
  curve, predicted-class distributions, accuracy vs learning rate);
* :mod:`entmin.viz.other`: the rest (corruption contact sheet, reward curves, per-class F1, estimation
  scatter, the two phases of EM).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["HOST_COLOURS", "colour", "finish", "pyplot", "save"]

# fixed colour per host (tab10), so the same method has the same colour in every figure
HOST_COLOURS = {"source": "#7f7f7f", "bn": "#8c564b", "tent": "#1f77b4", "eta": "#ff7f0e", "eata": "#2ca02c",
                "sar": "#d62728", "deyo": "#9467bd"}


def colour(method: str, objective: str = "em") -> str:
    """The host's colour; AdaDEM (and its variants) a lighter shade of it."""
    base = HOST_COLOURS.get(method, "#17becf")
    if objective.startswith(("adadem", "dem")):
        import matplotlib.colors as mc

        r, g, b = mc.to_rgb(base)
        return mc.to_hex((r + (1 - r) * 0.45, g + (1 - g) * 0.45, b + (1 - b) * 0.45))
    return base


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported lazily."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path, dpi: int = 120) -> None:
    """Lay out, write the PNG (creating its folder) and release the figure."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def finish(fig: Any, ax: Any, path: str | Path, *, xlabel: str, ylabel: str, title: str = "",
           legend_fontsize: int = 8, dpi: int = 120) -> None:
    """Label, legend, lay out, write the PNG and release the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_fontsize)
    save(fig, path, dpi)
