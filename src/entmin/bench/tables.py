"""Benchmark tables (Markdown, CSV) computed from store cells only.

One rule for every number: a seed counts for a configuration when its stream is finished (every cell
written); per-domain columns and the mean use those seeds only, and a delta against EM is computed on the seeds
finished in both rows. Unfinished seeds are reported, never averaged. Rows of one block that differ by anything
besides method, objective and learning rate (weights, dataset, data, batch size, ...) get a column saying how.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .streams import segment_count

__all__ = [
    "ABBREV",
    "build_table",
    "dem_star_table_markdown",
    "lr_table_markdown",
    "per_class_recall",
    "table_markdown",
    "windowed_accuracy",
    "write_csv",
]

ABBREV = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impul", "defocus_blur": "Defcs",
          "glass_blur": "Gls", "motion_blur": "Mtn", "zoom_blur": "Zm", "snow": "Snw", "frost": "Frst", "fog": "Fg",
          "brightness": "Brt", "contrast": "Cnt", "elastic_transform": "Els", "pixelate": "Px",
          "jpeg_compression": "Jpg", "clean": "Clean"}
_METHOD_ORDER = {"source": 0, "bn": 1, "tent": 2, "eta": 3, "eata": 4, "sar": 5, "deyo": 6}
_OBJ_ORDER = {"-": 0, "em": 1, "dem": 2, "cadf": 3, "adadem_norm": 4, "adadem_mec": 5, "adadem_v": 6, "adadem": 7}
# configuration fields that a table shows in its own columns (everything else that varies gets a column)
_SHOWN = {"method", "objective", "objective_options", "lr", "model", "protocol", "corruptions"}


def per_class_recall(cells: list[dict[str, Any]]) -> list[float | None]:
    """Recall of each true class over ``cells`` (a stream's cells of one seed): hits / count, summed over the
    cells; None for a class that never occurred. Under label shift the mean accuracy hides a class the adapted
    model has stopped predicting; its recall does not. Cells written before entmin recorded class counts
    raise ``ValueError`` (no silent zero)."""
    counts = correct = None
    for c in cells:
        m = c["metrics"]
        if "class_counts" not in m:
            raise ValueError(f"cell {c.get('domain')} of {c.get('config_hash')} has no per-class counts "
                             "(written by an older entmin): rerun it into a new store")
        counts = m["class_counts"] if counts is None else [a + b for a, b in zip(counts, m["class_counts"], strict=True)]
        correct = m["class_correct"] if correct is None else [a + b for a, b in
                                                              zip(correct, m["class_correct"], strict=True)]
    return [h / n if n else None for h, n in zip(correct or [], counts or [], strict=True)]


def windowed_accuracy(batch_acc: list[float], batch_sizes: list[int], window: int) -> list[float]:
    """Accuracy over a sliding window of ``window`` batches (weighted by batch size), one value per position
    from the window's end: how accuracy moves along a stream, less noisy than per batch."""
    if window < 1 or len(batch_acc) != len(batch_sizes):
        raise ValueError("window must be >= 1 and there must be one size per batch accuracy")
    hits = [a * n for a, n in zip(batch_acc, batch_sizes, strict=True)]
    out = []
    for end in range(window, len(hits) + 1):
        out.append(sum(hits[end - window:end]) / sum(batch_sizes[end - window:end]))
    return out


def _domain_accuracy(cells: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy per domain over one seed's cells: the mean over the visits of a domain, or, for cells that mix
    domains (they carry their own (n, correct) breakdown), the pooled accuracy of its images."""
    visits: dict[str, list[float]] = defaultdict(list)
    pooled: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in cells:
        if "domains" in c["metrics"]:
            for d, (n, k) in c["metrics"]["domains"].items():
                pooled[d][0] += int(n)
                pooled[d][1] += int(k)
        else:
            visits[c["domain"]].append(c["accuracy"])
    out = {d: _mean(v) for d, v in visits.items()}
    out.update({d: k / max(n, 1) for d, (n, k) in pooled.items()})
    return out


def build_table(rows: list[dict[str, Any]], seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """One entry per configuration, over ``seeds`` (default: all present): per-domain accuracy and the mean
    over the stream's cells, each averaged over the finished seeds; mean +- std over those seeds."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if seeds is None or r["seed"] in seeds:
            groups[r["config_hash"]].append(r)
    out = []
    for h, rs in groups.items():
        cfg = rs[0]["config"]
        n_cells = segment_count(cfg)
        by_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by_seed[r["seed"]].append(r)
        complete = {s: cs for s, cs in by_seed.items() if {c["position"] for c in cs} >= set(range(n_cells))}
        seed_means = {s: _mean([c["accuracy"] for c in cs]) for s, cs in complete.items()}
        domains = list(dict.fromkeys(cfg["corruptions"]))
        per_seed_domain = {s: _domain_accuracy(cs) for s, cs in complete.items()}
        per_domain = {d: _mean([m[d] for m in per_seed_domain.values() if d in m]) for d in domains}
        obj = cfg["objective"] + ("(" + ",".join(f"{k}={v}" for k, v in cfg["objective_options"].items()) + ")"
                                  if cfg.get("objective_options") else "")
        means = [seed_means[s] for s in sorted(seed_means)]
        collapsed = [s for s, cs in complete.items() if _collapsed(max(cs, key=lambda c: c["position"]))]
        out.append({"hash": h, "config": cfg, "model": cfg["model"], "protocol": cfg["protocol"],
                    "method": cfg["method"], "objective": obj if cfg["method"] not in ("source", "bn") else "-",
                    "lr": cfg.get("lr"), "per_domain": per_domain, "mean": _mean(means), "std": _std(means),
                    "seeds": sorted(complete), "seed_means": seed_means,
                    "partial_seeds": sorted(set(by_seed) - set(complete)), "collapsed_seeds": sorted(collapsed),
                    "wall_seconds": sum(r["wall_seconds"] for r in rs)})
    out.sort(key=lambda e: (e["model"], e["protocol"], _METHOD_ORDER.get(e["method"], 9),
                            _OBJ_ORDER.get(e["objective"].split("(")[0], 8), e["objective"], e["lr"] or 0,
                            _distinguishing_key(e["config"])))
    return out


COLLAPSE_SHARE = 0.5


def _collapsed(cell: dict[str, Any]) -> bool:
    """A stream that ends predicting one class for most samples of its last segment."""
    hist = cell["metrics"].get("pred_hist") or [0]
    return max(hist) > COLLAPSE_SHARE * max(1, sum(hist))


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def _std(v: list[float]) -> float:
    if len(v) < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def _distinguishing_key(cfg: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in cfg.items() if k not in _SHOWN))


def _short(key: str, value: Any) -> str:
    """How a varying field is shown: weights as file name + sha, provenance as its differing entries."""
    if key == "weights":
        return Path(str(value)).name if value is not None else "committed"
    if key == "provenance":
        if not value:
            return "built-in"
        return ", ".join(f"{k} {str(v).split(':')[-1][:8]}" for k, v in sorted(value.items()))
    return "-" if value is None else str(value)


def _extra_columns(es: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for e in es for k in e["config"]} - _SHOWN)
    return [k for k in keys if len({repr(e["config"].get(k)) for e in es}) > 1]


def _matched_delta(e: dict[str, Any], base: dict[str, Any] | None) -> str:
    """Mean over the seeds finished in both rows of (row - EM row), in points."""
    if base is None:
        return ""
    common = sorted(set(e["seed_means"]) & set(base["seed_means"]))
    if not common:
        return ""
    return f"{100 * _mean([e['seed_means'][s] - base['seed_means'][s] for s in common]):+.1f}"


def table_markdown(entries: list[dict[str, Any]], *, per_domain: bool = True, show_lr: bool = True,
                   flag_collapse: bool = True) -> str:
    """Paper-style table (accuracy %): one block per (model, protocol); delta against the host's EM row.
    ``flag_collapse``: mark rows whose stream ends predicting one class for more than half of its last segment
    (in how many seeds), since a collapsed run otherwise only shows as a low number."""
    lines: list[str] = []
    blocks: dict[tuple, list] = defaultdict(list)
    for e in entries:
        blocks[(e["model"], e["protocol"])].append(e)
    for (model, protocol), es in blocks.items():
        domains = list(dict.fromkeys(es[0]["config"]["corruptions"]))
        extra = _extra_columns(es)
        c0 = es[0]["config"]
        lines.append(f"\n**{model}, {protocol}** (severity {c0['severity']}, "
                     f"{c0['n_per_domain'] or 'all'} images/domain, batch {c0['batch_size']})\n")
        head = (["method", "objective"] + (["lr"] if show_lr else []) + extra
                + ([ABBREV.get(d, d) for d in domains] if per_domain else []) + ["mean ± std", "Δ vs EM", "seeds"])
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for e in es:
            same = [b for b in es if b["method"] == e["method"] and b["objective"] == "em"
                    and all(b["config"].get(k) == e["config"].get(k) for k in extra)]
            base = next((b for b in same if b["lr"] == e["lr"]), same[0] if same else None)
            delta = "" if e["objective"] in ("em", "-") else _matched_delta(e, base)
            cells = [e["method"], e["objective"]] + ([f"{e['lr']:g}" if e["method"] not in ("source", "bn") else "-"]
                                                     if show_lr else [])
            cells += [_short(k, e["config"].get(k)) for k in extra]
            if per_domain:
                cells += [f"{100 * e['per_domain'][d]:.1f}" if not math.isnan(e["per_domain"][d]) else "n/a"
                          for d in domains]
            seeds = str(len(e["seeds"])) + (f" (+{len(e['partial_seeds'])} unfinished)" if e["partial_seeds"] else "")
            if flag_collapse and e.get("collapsed_seeds"):
                seeds += f" ⚠ collapse in {len(e['collapsed_seeds'])}"
            cells += [f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}" if not math.isnan(e["mean"]) else "n/a",
                      delta, seeds]
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


def dem_star_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    """DEM* rows from the search records (``entmin search``): (tau*, alpha*), the completed trials (failed or
    unfinished ones counted apart), the search accuracy on the labelled 20%, and DEM*, EM and AdaDEM on the
    held-out 80% of the same streams."""
    lines = [("| model | protocol | host | τ* | α* | trials | images/corruption | lr | search 20% | DEM* 80% | "
              "EM 80% | AdaDEM 80% | AdaDEM − DEM* |"), "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(records, key=lambda k: (k.split(":")[1], k.split(":")[2], k.split(":")[0])):
        method, model, protocol = key.split(":")[:3]
        r = records[key]
        held = r.get("holdout_accuracy") or {}
        cells = [f"{100 * held[k]:.1f}" if k in held else "–" for k in ("DEM*", "EM", "AdaDEM")]
        gap = f"{100 * (held['AdaDEM'] - held['DEM*']):+.1f}" if len(held) == 3 else "–"
        n = r.get("n_per_domain", "–")
        trials = str(r.get("completed_trials", r["trials"]))
        others = [f"{r[k]} {k.split('_')[0]}" for k in ("failed_trials", "unfinished_trials") if r.get(k)]
        if others:
            trials += f" (+{', '.join(others)})"
        lines.append(f"| {model} | {protocol} | {method} | {r['tau']:.1f} | {r['alpha']:.1f} | {trials} | "
                     f"{'all' if n is None else n} | {r.get('lr', '–')} | "
                     f"{100 * r['search_accuracy']:.1f} | {' | '.join(cells)} | {gap} |")
    return "\n".join(lines) + "\n"
