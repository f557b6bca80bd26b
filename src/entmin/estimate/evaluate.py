"""Evaluation of the accuracy estimators over Fashion-MNIST-C: one record per split (true accuracy of the
source model, every baseline's estimate, the flip statistics), stored once (resumable), then
leave-one-corruption-out calibration of the flip maps and the MAE table.

Ground truth is the accuracy of the *source* model as deployed (eval mode; BatchNorm running statistics),
as in the Entropy Enigma code. ID data for DoC/ATC/COT is the clean test set (the source model was trained
on the whole training set, so training images would be over-confident).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..bench.store import ResultStore
from ..data.cache import FMNISTC
from ..data.corruptions import CORRUPTIONS
from ..models.checkpoints import load_source_model
from .baselines import BASELINES
from .flips import FlipsConfig, PolynomialMap, measure_flips

__all__ = [
    "FLIP_METHODS",
    "collect_records",
    "leave_one_corruption_out",
    "mae_table_markdown",
]

FLIP_METHODS = {"WF (quadratic)": ("weighted_flips", 2), "Flips (linear)": ("flips", 1),
                "Flips (quadratic)": ("flips", 2)}


@torch.no_grad()
def predict_logits(model, x, device, chunk=1000) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in chunks, gathered on the CPU."""
    return torch.cat([model(x[i:i + chunk].to(device)).float().cpu() for i in range(0, len(x), chunk)])


def collect_records(model_name: str, store: ResultStore, cfg: FlipsConfig, *, data: FMNISTC,
                    severities=(1, 2, 3, 4, 5), corruptions=tuple(CORRUPTIONS), device="cpu",
                    progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    kind = f"estimate:{model_name}:{json.dumps(cfg.__dict__, sort_keys=True)}"
    done = store.get_records(kind)
    source = load_source_model(model_name).to(device).eval()
    x_id, y_id = data.load("clean", 0)
    id_logits = predict_logits(source, x_id, device)
    fitted = {name: make().fit(id_logits, y_id) for name, make in BASELINES.items()}
    splits = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    for c, s in splits:
        key = f"{c}-{s}"
        if key in done:
            continue
        x, y = data.load(c, s)
        logits = id_logits if c == "clean" else predict_logits(source, x, device)
        rec: dict[str, Any] = {"corruption": c, "severity": s,
                               "accuracy": float((logits.argmax(1) == y).float().mean())}
        rec.update({name: est.estimate(logits) for name, est in fitted.items()})
        rec.update(measure_flips(lambda: load_source_model(model_name), x, cfg, device))
        store.put_record(kind, key, rec)
        done[key] = rec
        if progress:
            progress(f"{model_name} {key}: acc {rec['accuracy']:.3f}, WF {rec['weighted_flips']:.1f}")
    return done


def leave_one_corruption_out(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per target split (corrupted only), the estimate of every method. Flip maps are fitted on the clean
    split and every split of the *other* 14 corruptions."""
    recs = list(records.values())
    out: dict[str, dict[str, float]] = {}
    for target in sorted({r["corruption"] for r in recs} - {"clean"}):
        calib = [r for r in recs if r["corruption"] != target]
        maps = {}
        for name, (stat, deg) in FLIP_METHODS.items():
            maps[name] = PolynomialMap(deg).fit(np.array([r[stat] for r in calib]), np.array([r["accuracy"] for r in calib]))
        for r in recs:
            if r["corruption"] != target:
                continue
            est = {name: float(maps[name](r[stat])) for name, (stat, _) in FLIP_METHODS.items()}
            est.update({b: r[b] for b in BASELINES})
            est["true"] = r["accuracy"]
            out[f"{r['corruption']}-{r['severity']}"] = est
    return out


def mae_table_markdown(per_model: dict[str, dict[str, dict[str, float]]]) -> str:
    methods = list(BASELINES) + list(FLIP_METHODS)
    lines = ["| model | splits | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for model, ests in per_model.items():
        maes = {m: 100 * np.mean([abs(e[m] - e["true"]) for e in ests.values()]) for m in methods}
        best = min(maes.values())
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in maes.values()]
        lines.append(f"| {model} | {len(ests)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
