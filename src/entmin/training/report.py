"""Tables and plots for the training experiments (from store records)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_per_class_f1", "training_table_markdown"]

_SETTING = {"supervised": lambda c: f"n_train={c['n_train'] or 60000}",
            "semi": lambda c: f"{c['labels_per_class']} labels/class",
            "imbalanced": lambda c: f"ρ={c['imbalance_ratio']:g}"}


def _group(records: dict[str, dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list] = defaultdict(list)
    for r in records.values():
        c = r["config"]
        groups[(c["task"], c["model"], _SETTING[c["task"]](c), c["loss"], c["steps"])].append(r)
    return groups


def training_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | model | setting | loss / method | steps | top-1 (%) mean ± std | macro-F1 (%) | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for (task, model, setting, loss, steps), rs in sorted(_group(records).items()):
        acc = 100 * np.array([r["accuracy"] for r in rs])
        f1 = 100 * np.array([r["macro_f1"] for r in rs])
        sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
        lines.append(f"| {task} | {model} | {setting} | {loss} | {steps} | {acc.mean():.2f} ± {sd:.2f} | "
                     f"{f1.mean():.2f} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def plot_per_class_f1(records: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Per-class F1 (mean over seeds), one line per method (the DEM paper's Fig. 5 analog)."""
    from .._plotting import finish, pyplot

    fig, ax = pyplot().subplots(figsize=(7, 4))
    for (_task, _model, setting, loss, _steps), rs in sorted(_group(records).items()):
        f1 = np.mean([r["per_class_f1"] for r in rs], axis=0)
        ax.plot(range(len(f1)), f1, marker="o", label=f"{loss} ({setting}): mean {f1.mean():.3f}")
    finish(fig, ax, path, xlabel="class (0 = head ... 9 = tail)", ylabel="F1 on the balanced test set",
           title=title, legend_fontsize=7)
