"""Decoupled entropy minimisation DEM(tau, alpha) (dem_spec.md 1.4).

L = T_tau(z) + alpha * Q(z) with T_tau = -sum_i softmax(z / tau)_i z_i: the temperature acts only inside the
CADF weights (z in the product is not divided by tau, and q keeps its gradient), alpha weights only the GMC.
tau = alpha = 1 is classical EM (same value and gradient); alpha = 0 is "CADF only".
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .._validate import check_logits, check_positive, compute_dtype

__all__ = ["DEM", "dem", "validate_dem_params"]


def validate_dem_params(tau: float, alpha: float, *, warn: bool = True) -> tuple[float, float]:
    """Check tau > 0 and alpha >= 0; warn outside the valid range tau <= 2 / alpha of Prop. A.1."""
    tau = check_positive(tau, "tau")
    alpha = check_positive(alpha, "alpha", allow_zero=True)
    if warn and alpha > 0 and tau * alpha > 2.0 + 1e-12:
        warnings.warn(f"DEM with tau={tau}, alpha={alpha}: tau * alpha = {tau * alpha:.3g} > 2 lies outside "
                      "the valid range 0 < tau <= 2/alpha of Prop. A.1 (ties are no longer broken towards "
                      "the arg-max class)", RuntimeWarning, stacklevel=3)
    return tau, alpha


def dem(logits: torch.Tensor, tau: float = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """Per-sample DEM loss, shape (N,); per pixel (N, *) for logits (N, C, *)."""
    tau, alpha = validate_dem_params(tau, alpha)
    return _dem(logits, tau, alpha)


def _dem(logits: torch.Tensor, tau: float, alpha: float) -> torch.Tensor:
    check_logits(logits, dense=True)
    z = logits.to(compute_dtype(logits.dtype))
    q = torch.softmax(z / tau, dim=1)
    loss = -(q * z).sum(1)
    if alpha != 0.0:
        loss = loss + alpha * torch.logsumexp(z, dim=1)
    return loss.to(logits.dtype)


class DEM(nn.Module):
    """Module form of :func:`dem`; parameters are validated once at construction."""

    name = "dem"

    def __init__(self, tau: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__()
        self.tau, self.alpha = validate_dem_params(tau, alpha)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return _dem(logits, self.tau, self.alpha)

    def reset(self) -> None:  # stateless
        pass

    def extra_repr(self) -> str:
        return f"tau={self.tau}, alpha={self.alpha}"
