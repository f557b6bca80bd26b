"""Tables of the training experiments (from store records)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

__all__ = ["group_training_records", "training_table_markdown"]

_SETTING = {"supervised": lambda c: f"n_train={c['n_train'] or 60000}",
            "semi": lambda c: f"{c['labels_per_class']} labels/class",
            "imbalanced": lambda c: f"ρ={c['imbalance_ratio']:g}"}


def group_training_records(records: dict[str, dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list] = defaultdict(list)
    for r in records.values():
        c = r["config"]
        groups[(c["task"], c["model"], _SETTING[c["task"]](c), c["loss"], c["steps"])].append(r)
    return groups


def training_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | model | setting | loss / method | steps | top-1 (%) mean ± std | macro-F1 (%) | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for (task, model, setting, loss, steps), rs in sorted(group_training_records(records).items()):
        acc = 100 * np.array([r["accuracy"] for r in rs])
        f1 = 100 * np.array([r["macro_f1"] for r in rs])
        sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
        lines.append(f"| {task} | {model} | {setting} | {loss} | {steps} | {acc.mean():.2f} ± {sd:.2f} | "
                     f"{f1.mean():.2f} | {len(rs)} |")
    return "\n".join(lines) + "\n"
