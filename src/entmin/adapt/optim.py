"""The optimizer of the adapted parameters: the hosts' SGD with momentum 0.9 (or Adam), validated up front."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .constants import ADAPTER_DEFAULT_LR

__all__ = ["OptimizerConfig", "build_optimizer"]


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer of the adapted parameters. ``name``: ``sgd`` (the hosts' default, momentum 0.9) or ``adam``."""

    name: str = "sgd"
    lr: float = ADAPTER_DEFAULT_LR
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.name!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


def build_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
