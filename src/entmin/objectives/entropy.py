"""Classical entropy minimisation and its decoupling H = T + Q (dem_spec.md 1.1-1.3).

``entropy`` is the classical EM loss: its value is the Shannon entropy (nats) and its gradient is the exact
gradient of H. ``cadf`` (T = -sum p z) and ``gmc`` (Q = logsumexp z) are the two parts the DEM paper
separates. ``em_surrogate`` is the paper's gradient-equivalent form -sum (p - sg(p)) z, whose value is 0:
use it only where the ``-sum w z`` form matters (e.g. to compare against AdaDEM-Norm); thresholds, sample
weights and logs must always use ``entropy``.

All of them are dense as they stand: logits (N, C, *) (classes on dim 1, e.g. (N, C, H, W) per pixel) give
per-pixel losses (N, *), computed along dim 1 without reshaping or copying the logits.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_logits, compute_dtype

__all__ = ["EM", "cadf", "em_surrogate", "entropy", "gmc"]


def _prepare(logits: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    check_logits(logits, num_classes=num_classes, dense=True)
    return logits.to(compute_dtype(logits.dtype))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample conditional entropy H(softmax(z)) in nats, shape (N,) (per pixel (N, H, W) for logits
    (N, C, H, W)). This *is* the EM loss."""
    return entropy_of_checked(_prepare(logits)).to(logits.dtype)


def entropy_of_checked(logits: torch.Tensor) -> torch.Tensor:
    """``entropy`` without the input checks, for logits that were validated already in the same step (the
    finiteness check is a device-to-host sync on a GPU). Computes in the dtype it is given."""
    logp = torch.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1)


def cadf(logits: torch.Tensor) -> torch.Tensor:
    """Cluster aggregation driving factor T(z) = -sum_i p_i z_i, shape (N,)."""
    z = _prepare(logits)
    return -(torch.softmax(z, dim=1) * z).sum(1).to(logits.dtype)


def gmc(logits: torch.Tensor) -> torch.Tensor:
    """Gradient mitigation calibrator Q(z) = logsumexp(z), shape (N,)."""
    z = _prepare(logits)
    return torch.logsumexp(z, dim=1).to(logits.dtype)


def em_surrogate(logits: torch.Tensor) -> torch.Tensor:
    """-sum_i (p_i - sg(p_i)) z_i: same gradient as ``entropy``, value identically 0 (Eq. 8)."""
    z = _prepare(logits)
    p = torch.softmax(z, dim=1)
    return -((p - p.detach()) * z).sum(1).to(logits.dtype)


class EM(nn.Module):
    """Module form of ``entropy`` so that every objective has the same (module) interface."""

    name = "em"

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return entropy(logits)

    def reset(self) -> None:  # stateless
        pass
