"""Shared matplotlib plumbing: the headless backend and the common finishing steps of every figure."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["finish", "pyplot"]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported lazily."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig: Any, ax: Any, path: str | Path, *, xlabel: str, ylabel: str, title: str = "",
           legend_fontsize: int = 8, dpi: int = 120) -> None:
    """Label, legend, lay out, write the PNG and release the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_fontsize)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
