"""Reward curves: R_m = -dL/dz_m of one class as its probability varies (the paper's Fig. 2/3/4 left).

The logits are built so that class m has probability p_m and the other C - 1 classes share 1 - p_m equally:
z_m = ln p_m, z_j = ln((1 - p_m) / (C - 1)). The reward is read from autograd, so the curve is exactly what
the objective's implementation does, not a re-derived formula. For AdaDEM the bank is left at its initial
uniform value (update=False): the curve is the reward a fresh AdaDEM gives.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

__all__ = ["probability_sweep_logits", "reward_curve"]


def probability_sweep_logits(probs: torch.Tensor, num_classes: int, cls: int = 0) -> torch.Tensor:
    """(len(probs), C) logits whose softmax gives class ``cls`` the probability ``probs[i]``."""
    probs = probs.to(torch.float64)
    if num_classes < 2 or not 0 <= cls < num_classes:
        raise ValueError(f"need num_classes >= 2 and 0 <= cls < num_classes, got {num_classes}, {cls}")
    if bool(((probs <= 0) | (probs >= 1)).any()):
        raise ValueError("probabilities must lie strictly inside (0, 1)")
    rest = torch.log((1 - probs) / (num_classes - 1))
    z = rest.unsqueeze(1).repeat(1, num_classes)
    z[:, cls] = torch.log(probs)
    return z


def _takes_update(objective: Callable[..., torch.Tensor]) -> bool:
    fn = objective.forward if isinstance(objective, torch.nn.Module) else objective
    try:
        return "update" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def reward_curve(objective: Callable[[torch.Tensor], torch.Tensor], probs: torch.Tensor, num_classes: int,
                 cls: int = 0) -> torch.Tensor:
    """Reward -dL/dz_cls for each probability in ``probs`` (float64), one sample at a time."""
    z = probability_sweep_logits(probs, num_classes, cls).requires_grad_(True)
    # AdaDEM: do not move the bank while drawing. Decided from the signature, not by retrying on TypeError
    # (which would hide a bug inside the objective and could call it twice).
    loss = objective(z, update=False) if _takes_update(objective) else objective(z)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return -grad[:, cls].detach()
