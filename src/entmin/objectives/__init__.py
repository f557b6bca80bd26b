"""Entropy-minimisation objectives: ``logits (N, C) -> per-sample loss (N,)``.

One-line use::

    loss = entropy(logits).mean()                 # classical EM
    loss = dem(logits, tau=1.2, alpha=1.4).mean()  # DEM(tau, alpha)
    loss = AdaDEM(num_classes)(logits).mean()      # AdaDEM (keep the module: it holds the MEC bank)

``get_objective(name, **kwargs)`` builds any of them by name for adapters and the command line.

Dense prediction: every unsupervised objective also takes logits (N, C, *) (classes on dim 1: (N, C, H, W) per
pixel, (N, C, L) per token) and returns per-pixel losses (N, *); :func:`masked_mean` reduces them over the
valid pixels (AdaDEM's ``bank_mask`` keeps invalid pixels out of its bank too)::

    loss = masked_mean(AdaDEM(19)(seg_logits, bank_mask=valid), valid)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .adadem import ADADEM_VARIANTS, AdaDEM, cadf_reward_norm, update_mec_bank
from .dem import DEM, dem, validate_dem_params
from .entropy import EM, cadf, em_surrogate, entropy, gmc
from .rewards import probability_sweep_logits, reward_curve
from .supervised import MinEnt, MixEnt, min_ent, mix_ent, swapped_cross_entropy

__all__ = [
    "ADADEM_VARIANTS",
    "DEM",
    "EM",
    "OBJECTIVES",
    "AdaDEM",
    "MinEnt",
    "MixEnt",
    "Objective",
    "cadf",
    "cadf_reward_norm",
    "dem",
    "em_surrogate",
    "entropy",
    "get_objective",
    "gmc",
    "masked_mean",
    "min_ent",
    "mix_ent",
    "probability_sweep_logits",
    "reward_curve",
    "swapped_cross_entropy",
    "update_mec_bank",
    "validate_dem_params",
]

Objective = Callable[[torch.Tensor], torch.Tensor]


def masked_mean(loss: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-sample/per-pixel losses over the ``True`` entries of ``mask`` (all when ``None``); 0 (with a
    gradient path) when no entry is valid, so that an all-ignored batch does not produce NaN."""
    if mask is None:
        return loss.mean()
    if mask.shape != loss.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of the loss's shape {tuple(loss.shape)}, got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    return torch.where(mask, loss, torch.zeros((), dtype=loss.dtype, device=loss.device)).sum() / mask.sum().clamp_min(1)


class _Wrapped(nn.Module):
    def __init__(self, fn: Objective, name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.fn(logits)

    def reset(self) -> None:
        pass


def _adadem(variant: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, **kw: Any) -> nn.Module:
        if num_classes is None:
            raise ValueError(f"objective 'adadem' ({variant}) needs num_classes")
        return AdaDEM(num_classes, variant=variant, **kw)
    return build


def _no_kwargs(factory: Callable[[], nn.Module], name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, **kw: Any) -> nn.Module:
        if kw:
            raise ValueError(f"objective {name!r} takes no options, got {sorted(kw)}")
        return factory()
    return build


OBJECTIVES: dict[str, Callable[..., nn.Module]] = {
    "em": _no_kwargs(EM, "em"),
    "em_surrogate": _no_kwargs(lambda: _Wrapped(em_surrogate, "em_surrogate"), "em_surrogate"),
    "cadf": _no_kwargs(lambda: _Wrapped(cadf, "cadf"), "cadf"),
    "dem": lambda num_classes=None, **kw: DEM(**kw),
    "adadem": _adadem("adadem"),
    "adadem_norm": _adadem("norm"),
    "adadem_mec": _adadem("mec"),
    "adadem_v": _adadem("v"),
}
_ALIASES = {"entropy": "em", "ent": "em", "tent": "em", "adadem-norm": "adadem_norm",
            "adadem-mec": "adadem_mec", "adadem-v": "adadem_v"}


def get_objective(name: str | Objective, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build an objective by name (``em``, ``dem``, ``adadem``, ``adadem_norm``, ``adadem_mec``,
    ``adadem_v``, ``cadf``, ``em_surrogate``); a callable ``logits -> (N,)`` is wrapped as is.

    Unknown names and options raise ``ValueError``.
    """
    if callable(name):
        if kwargs:
            raise ValueError("options cannot be passed with a callable objective")
        return name if isinstance(name, nn.Module) else _Wrapped(name, getattr(name, "__name__", "custom"))
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    try:
        return OBJECTIVES[key](num_classes=num_classes, **kwargs)
    except TypeError as e:  # unexpected keyword
        raise ValueError(f"invalid option for objective {name!r}: {e}") from None
