"""Test-time adaptation: ``make_adapter(name, model, objective=..., **options) -> Adapter``.

Five lines to adapt any classifier::

    from entmin.adapt import make_adapter
    adapter = make_adapter("tent", model, objective="adadem", optimizer={"lr": 1e-3})
    for x in test_batches:
        logits = adapter(x)          # predictions of the batch; the model is updated once per batch
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .base import Adapter, OptimizerConfig, build_optimizer
from .configure import norm_layers, select_parameters, use_batch_statistics
from .deyo import DeYO, patch_shuffle
from .eata import EATA, ETA, compute_fisher
from .frozen import FROZEN_RULES, default_frozen_modules
from .norm import BNAdapter, SourceAdapter
from .sar import SAR
from .tent import Tent

__all__ = [
    "ADAPTERS",
    "EATA",
    "ETA",
    "FROZEN_RULES",
    "SAR",
    "Adapter",
    "BNAdapter",
    "DeYO",
    "OptimizerConfig",
    "SourceAdapter",
    "Tent",
    "build_optimizer",
    "compute_fisher",
    "default_frozen_modules",
    "make_adapter",
    "norm_layers",
    "patch_shuffle",
    "select_parameters",
    "use_batch_statistics",
]

ADAPTERS: dict[str, type[Adapter]] = {
    "source": SourceAdapter, "bn": BNAdapter, "tent": Tent, "eta": ETA, "eata": EATA, "sar": SAR, "deyo": DeYO,
}


def make_adapter(name: str, model: nn.Module, objective: Any = "em", **options: Any) -> Adapter:
    """Build a registered adapter by name; unknown names or options raise ``ValueError``."""
    key = str(name).lower()
    if key not in ADAPTERS:
        raise ValueError(f"unknown adaptation method {name!r}; choose one of {sorted(ADAPTERS)}")
    try:
        return ADAPTERS[key](model, objective, **options)
    except TypeError as e:
        raise ValueError(f"invalid option for method {name!r}: {e}") from None
