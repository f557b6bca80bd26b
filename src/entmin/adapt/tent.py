"""Tent (Wang et al., ICLR'21): minimise the objective averaged over the batch; norm affine parameters."""
from __future__ import annotations

import torch

from .._validate import compute_dtype
from ..objectives.entropy import entropy_of_checked
from .base import Adapter

__all__ = ["Tent"]


class Tent(Adapter):
    def adapt_batch(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        loss = self.objective_loss(logits).mean()
        self.step(loss)
        with torch.no_grad():  # the objective checked these logits already
            ent = entropy_of_checked(logits.detach().to(compute_dtype(logits.dtype)))
            self._diag = {"n": x.shape[0], "entropy": ent.mean(), "loss": loss.detach(), "selected": x.shape[0]}
        return logits.detach()
