"""The TPT table: accuracy per split (mean over seeds), the mean over the corrupted splits and over all splits
(mean ± std over seeds), Δ vs zero-shot, and the time per test image; as the paper's Table 2 (right)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

__all__ = ["tpt_table_markdown"]

_ORDER = {"zero-shot": 0, "ensemble": 1, "tpt": 2, "coop": 3, "tpt-coop": 4}


def _short(split: str) -> str:
    return "".join(w[0] for w in split.split("_")) if "_" in split else split[:5]


def tpt_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    """Only splits whose every block is stored count; a configuration's row uses the splits all its seeds
    finished, and the columns are the splits every row has (others are left out rather than averaged
    over fewer images)."""
    acc: dict[str, dict[int, dict[str, list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records.values():
        acc[r["config_hash"]][r["seed"]][r["split"]].append(r)
    rows = []
    for h, seeds in acc.items():
        cfg = next(iter(next(iter(seeds.values())).values()))[0]["config"]
        need = -(-cfg["n_images"] // cfg["block"])
        full = {s: {sp: blocks for sp, blocks in v.items() if len(blocks) == need} for s, v in seeds.items()}
        common = set.intersection(*(set(v) for v in full.values()))
        if not common:
            continue
        per = {s: {sp: sum(b["correct"] for b in v[sp]) / sum(b["n"] for b in v[sp]) for sp in common}
               for s, v in full.items()}
        secs = [b["wall_seconds"] / b["n"] for v in full.values() for sp in common for b in v[sp]]
        rows.append((cfg, next(iter(next(iter(seeds.values())).values()))[0]["label"], per, float(np.mean(secs))))
    if not rows:
        return ""
    splits = sorted(set.intersection(*(set(next(iter(p.values()))) for _, _, p, _ in rows)),
                    key=lambda s: (s != "clean", s))
    corrupted = [s for s in splits if s != "clean"]
    rows.sort(key=lambda r: (_ORDER[r[0]["method"]], r[0]["steps"], r[0]["lr"], r[1]))
    base = next((np.mean([np.mean([v[s] for s in splits]) for v in p.values()]) for c, _, p, _ in rows
                 if c["method"] == "zero-shot"), None)
    head = ["method", "steps", "lr", *(_short(s) for s in splits), "corrupted avg", "avg (Δ vs zero-shot)",
            "seeds", "ms / image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cfg, label, per, sec in rows:
        tuned = cfg["method"] in ("tpt", "tpt-coop")
        cells = [f"{100 * np.mean([v[s] for v in per.values()]):.1f}" for s in splits]
        cor = [np.mean([v[s] for s in corrupted]) for v in per.values()] if corrupted else [np.nan]
        avg = [np.mean([v[s] for s in splits]) for v in per.values()]
        delta = f" ({100 * (np.mean(avg) - base):+.1f})" if base is not None else ""
        lines.append("| " + " | ".join([
            label, str(cfg["steps"]) if tuned else "–", f"{cfg['lr']:g}" if tuned else "–", *cells,
            f"{100 * np.mean(cor):.1f} ± {100 * np.std(cor):.1f}", f"{100 * np.mean(avg):.1f} ± "
            f"{100 * np.std(avg):.1f}{delta}", str(len(per)), f"{1000 * sec:.1f}"]) + " |")
    return "\n".join(lines) + "\n"
