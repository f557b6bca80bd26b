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
    finished. "Δ vs EM" compares a DEM/AdaDEM row with the same method, steps, lr, views and images under EM
    over the seeds both have (paired: same images, same augmentations)."""
    acc: dict[str, dict[int, dict[str, list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records.values():
        acc[r["config_hash"]][r["seed"]][r["split"]].append(r)
    rows = []
    for seeds in acc.values():
        first = next(iter(next(iter(seeds.values())).values()))[0]   # any record: config and label are shared
        cfg = first["config"]
        need = -(-cfg["n_images"] // cfg["block"])
        full = {s: {sp: blocks for sp, blocks in v.items() if len(blocks) == need} for s, v in seeds.items()}
        common = set.intersection(*(set(v) for v in full.values()))
        if not common:
            continue
        per = {s: {sp: sum(b["correct"] for b in v[sp]) / sum(b["n"] for b in v[sp]) for sp in common}
               for s, v in full.items()}
        secs = [b["wall_seconds"] / b["n"] for v in full.values() for sp in common for b in v[sp]]
        rows.append((cfg, first["label"], per, float(np.mean(secs))))
    if not rows:
        return ""
    # columns: the splits of the most complete row; a row that lacks some (still running) is left out and
    # counted below the table, rather than averaged over fewer splits or shrinking every other row's columns
    splits = sorted(max((set(next(iter(p.values()))) for _, _, p, _ in rows), key=len),
                    key=lambda s: (s != "clean", s))
    partial = [r for r in rows if not set(splits) <= set(next(iter(r[2].values())))]
    rows = [r for r in rows if r not in partial]
    corrupted = [s for s in splits if s != "clean"]
    rows.sort(key=lambda r: (_ORDER[r[0]["method"]], r[0]["steps"], r[0]["lr"], r[1]))
    base = next((np.mean([np.mean([v[s] for s in splits]) for v in p.values()]) for c, _, p, _ in rows
                 if c["method"] == "zero-shot"), None)
    head = ["method", "steps", "lr", *(_short(s) for s in splits), "corrupted avg", "avg (Δ vs zero-shot)",
            "Δ vs EM", "seeds", "ms / image"]

    def twin(cfg: dict[str, Any]) -> tuple:
        return (cfg["method"], cfg["steps"], cfg["lr"], cfg.get("augment", "crops"), cfg.get("offset", 0),
                cfg["n_images"])
    em_avg = {twin(c): {seed: np.mean([v[s] for s in splits]) for seed, v in p.items()}
              for c, _, p, _ in rows if c["method"] in ("tpt", "tpt-coop") and c["objective"] == "em"}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cfg, label, per, sec in rows:
        tuned = cfg["method"] in ("tpt", "tpt-coop")
        cells = [f"{100 * np.mean([v[s] for v in per.values()]):.1f}" for s in splits]
        cor = [np.mean([v[s] for s in corrupted]) for v in per.values()] if corrupted else [np.nan]
        avg = [np.mean([v[s] for s in splits]) for v in per.values()]
        delta = f" ({100 * (np.mean(avg) - base):+.1f})" if base is not None else ""
        em = em_avg.get(twin(cfg)) if tuned and cfg["objective"] != "em" else None
        paired = [np.mean([v[s] for s in splits]) - em[seed] for seed, v in per.items() if em and seed in em]
        vs_em = f"{100 * np.mean(paired):+.2f} (n={len(paired)})" if paired else "–"
        cor_cell = f"{100 * np.mean(cor):.1f} ± {100 * np.std(cor):.1f}" if corrupted else "–"
        avg_cell = f"{100 * np.mean(avg):.1f} ± {100 * np.std(avg):.1f}{delta}"
        lines.append("| " + " | ".join([
            label, str(cfg["steps"]) if tuned else "–", f"{cfg['lr']:g}" if tuned else "–", *cells, cor_cell,
            avg_cell, vs_em, str(len(per)), f"{1000 * sec:.1f}"]) + " |")
    if partial:
        lines.append(f"\n({len(partial)} configuration(s) not shown: not all of these splits finished yet)")
    return "\n".join(lines) + "\n"
