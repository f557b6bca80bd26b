"""Entropy-regularised supervised losses MIN-ENT and MIX-ENT (wf_mixent_spec.md part B).

    MIN-ENT: beta1 * CE_{b1}(y, p_hat) + beta2 * H_{b2}(p_hat)
    MIX-ENT: beta1 * CE_{b1}(y, p_hat) + beta2 * CE_{b2}(p_hat, y + eps)      (the "swapped" cross-entropy)

with log_b(x) = ln x / ln b. The bases are fixed hyper-parameters (b > 1): a base is only the weight 1/ln b
on its term, fully redundant with beta (the released code keeps them fixed too). The weights beta are
learnable ``nn.Parameter``s kept positive by a parametrisation:

* ``weighting="softplus"``: beta_i = softplus(u_i), independent. Caveat (spec B3): minimising the loss over
  beta only shrinks every beta (dL/dbeta_i = L_i >= 0); it acts as a learnable loss scale.
* ``weighting="softmax"``: (beta1, beta2) = (beta1_0 + beta2_0) * softmax(u); the total is fixed, so only
  the trade-off between the two terms is learned (it still drifts toward the smaller term).
* ``learnable=False``: fixed betas (buffers).

Put ``loss.parameters()`` in their own optimizer parameter group (its own learning rate), as the paper does.
Losses are returned per sample (N,); callers reduce (mean in the paper's code).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_logits, check_positive, compute_dtype

__all__ = ["MinEnt", "MixEnt", "min_ent", "mix_ent", "swapped_cross_entropy"]


def _check_base(b: float, name: str) -> float:
    b = float(b)
    if not b > 1.0 or math.isinf(b):
        raise ValueError(f"{name} must be a finite logarithm base > 1, got {b}")
    return b


def _targets_to_probs(target: torch.Tensor, n: int, c: int, dtype: torch.dtype) -> torch.Tensor:
    if target.dim() == 1:
        if target.shape[0] != n or target.is_floating_point():
            raise ValueError(f"integer targets must have shape ({n},), got {target.dtype} {tuple(target.shape)}")
        if n and (int(target.min()) < 0 or int(target.max()) >= c):
            raise ValueError(f"targets must lie in [0, {c - 1}], got range [{int(target.min())}, "
                             f"{int(target.max())}]")
        return F.one_hot(target.long(), c).to(dtype)
    if target.shape != (n, c):
        raise ValueError(f"soft targets must have shape ({n}, {c}), got {tuple(target.shape)}")
    return target.to(dtype)


def _cross_entropy(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(t * torch.log_softmax(z, dim=1)).sum(1)


def swapped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """-sum_y p_hat(y) ln(p(y) + eps), natural log, per sample. For one-hot p this is about
    ln(1/eps) * (1 - p_hat_target): a reverse-CE/MAE-like term (as in Symmetric Cross Entropy)."""
    check_logits(logits)
    z = logits.to(compute_dtype(logits.dtype))
    t = _targets_to_probs(target, z.shape[0], z.shape[1], z.dtype)
    return -(torch.softmax(z, dim=1) * torch.log(t + eps)).sum(1).to(logits.dtype)


def min_ent(logits: torch.Tensor, target: torch.Tensor, beta1: float = 1.0, beta2: float = 0.1,
            base1: float = math.e, base2: float = math.e) -> torch.Tensor:
    """Per-sample MIN-ENT: cross-entropy plus beta2 times the prediction entropy (Grandvalet-Bengio)."""
    check_logits(logits)
    b1, b2 = _check_base(base1, "base1"), _check_base(base2, "base2")
    z = logits.to(compute_dtype(logits.dtype))
    t = _targets_to_probs(target, z.shape[0], z.shape[1], z.dtype)
    logp = torch.log_softmax(z, dim=1)
    ce = _cross_entropy(z, t) / math.log(b1)
    ent = -(logp.exp() * logp).sum(1) / math.log(b2)
    return (beta1 * ce + beta2 * ent).to(logits.dtype)


def mix_ent(logits: torch.Tensor, target: torch.Tensor, beta1: float = 1.0, beta2: float = 0.1,
            base1: float = math.e, base2: float = math.e, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample MIX-ENT: cross-entropy plus beta2 times the swapped cross-entropy."""
    check_logits(logits)
    b1, b2 = _check_base(base1, "base1"), _check_base(base2, "base2")
    check_positive(eps, "eps")
    z = logits.to(compute_dtype(logits.dtype))
    t = _targets_to_probs(target, z.shape[0], z.shape[1], z.dtype)
    ce = _cross_entropy(z, t) / math.log(b1)
    swapped = -(torch.softmax(z, dim=1) * torch.log(t + eps)).sum(1) / math.log(b2)
    return (beta1 * ce + beta2 * swapped).to(logits.dtype)


class _WeightedPair(nn.Module):
    """Two positive learnable (or fixed) weights beta1, beta2."""

    def __init__(self, beta1: float, beta2: float, learnable: bool, weighting: str) -> None:
        super().__init__()
        beta1 = check_positive(beta1, "beta1")
        beta2 = check_positive(beta2, "beta2")
        if weighting not in ("softplus", "softmax"):
            raise ValueError(f"weighting must be 'softplus' or 'softmax', got {weighting!r}")
        self.weighting = weighting
        self.total = beta1 + beta2
        if weighting == "softplus":
            # inverse softplus so that softplus(u) == beta at initialisation
            init = torch.tensor([beta1, beta2], dtype=torch.float64)
            raw = (init + torch.log(-torch.expm1(-init))).float()
        else:
            raw = torch.log(torch.tensor([beta1, beta2]) / self.total)
        if learnable:
            self.raw = nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)

    def betas(self) -> torch.Tensor:
        if self.weighting == "softplus":
            return F.softplus(self.raw)
        return self.total * torch.softmax(self.raw, dim=0)


class MinEnt(_WeightedPair):
    """MIN-ENT as a module with learnable positive weights (see module docstring)."""

    def __init__(self, beta1: float = 1.0, beta2: float = 0.1, base1: float = math.e, base2: float = math.e, *,
                 learnable: bool = True, weighting: str = "softplus") -> None:
        super().__init__(beta1, beta2, learnable, weighting)
        self.base1, self.base2 = _check_base(base1, "base1"), _check_base(base2, "base2")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        b = self.betas()
        ce = min_ent(logits, target, 1.0, 0.0, self.base1, self.base2)
        ent = min_ent(logits, target, 0.0, 1.0, self.base1, self.base2)
        return b[0].to(ce.dtype) * ce + b[1].to(ce.dtype) * ent


class MixEnt(_WeightedPair):
    """MIX-ENT as a module with learnable positive weights (see module docstring)."""

    def __init__(self, beta1: float = 1.0, beta2: float = 0.1, base1: float = math.e, base2: float = math.e, *,
                 eps: float = 1e-6, learnable: bool = True, weighting: str = "softplus") -> None:
        super().__init__(beta1, beta2, learnable, weighting)
        self.base1, self.base2 = _check_base(base1, "base1"), _check_base(base2, "base2")
        self.eps = check_positive(eps, "eps")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        b = self.betas()
        ce = mix_ent(logits, target, 1.0, 0.0, self.base1, self.base2, self.eps)
        sw = mix_ent(logits, target, 0.0, 1.0, self.base1, self.base2, self.eps)
        return b[0].to(ce.dtype) * ce + b[1].to(ce.dtype) * sw
