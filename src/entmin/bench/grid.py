"""Experiment grids: the configurations of methods x objectives x protocols x models over a common base,
with weights given per model and ``dem*`` resolved to the (tau, alpha) found by `entmin search`."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UsageError
from .config import RunConfig

__all__ = ["DEM_STAR", "expand_grid", "parse_weights"]

DEM_STAR = ("dem*", "demstar")
NO_OBJECTIVE = ("source", "bn")


def parse_weights(spec: str | None, models: Sequence[str]) -> dict[str, str | None]:
    """``--weights``: one file for one model, ``model=file,...`` for several (``pretrained`` applies to all).
    One file for several models is refused: it would run the same weights under every model's name."""
    if spec is None:
        return {m: None for m in models}
    if "=" not in spec:
        if len(models) > 1 and spec != "pretrained":
            raise UsageError(f"one --weights file for {len(models)} models ({', '.join(models)}); give one per "
                             f"model: --weights {models[0]}=a.pt,{models[1]}=b.pt")
        return {m: spec for m in models}
    out: dict[str, str | None] = {m: None for m in models}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        model, sep, path = part.partition("=")
        if not sep or not path:
            raise UsageError(f"--weights item {part!r} is not model=file")
        if model not in out:
            raise UsageError(f"--weights names model {model!r}, which is not among --models {list(models)}")
        out[model] = path
    return out


def expand_grid(base: dict[str, Any], *, methods: Sequence[str], objectives: Sequence[str],
                protocols: Sequence[str], models: Sequence[str], weights: dict[str, str | None] | None = None,
                dem_star: Callable[[RunConfig], dict[str, float] | None] | None = None) -> list[RunConfig]:
    """One :class:`RunConfig` per grid point (``source``/``bn`` once, they have no objective). Objective
    ``dem*`` takes the stored (tau*, alpha*) of the same setting (``dem_star(config)``), or is refused."""
    weights = weights or {}
    out = []
    for model in models:
        for protocol in protocols:
            for method in methods:
                for obj in (["em"] if method in NO_OBJECTIVE else objectives):
                    cfg = RunConfig.from_dict({**base, "method": method, "protocol": protocol, "model": model,
                                       "weights": weights.get(model), "objective": "em" if obj in DEM_STAR else obj})
                    if obj in DEM_STAR:
                        best = dem_star(cfg) if dem_star else None
                        if best is None:
                            raise UsageError(f"no DEM* parameters stored for {method}/{model}/{protocol}; run "
                                             f"`entmin search --method {method} --model {model} --protocol "
                                             f"{protocol}` with the same settings first")
                        cfg = dataclasses.replace(cfg, objective="dem", objective_options=(
                            ("alpha", best["alpha"]), ("tau", best["tau"])))
                    out.append(cfg)
    return out
