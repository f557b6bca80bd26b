"""SAR (Niu et al., ICLR'23): reliable entropy minimisation with sharpness-aware updates (SAM) and model
recovery.

Per batch: S1 = {H < E0}; loss1 on S1; SAM ascent step eps = rho g / ||g||; second forward at theta + eps;
S2 = S1 & {H' < E0}; loss2 on S2; descend from theta with the gradient at theta + eps. Recovery: an EMA of the
mean *entropy* on S2 (not the objective value: AdaDEM's value is no entropy); when it falls below
``reset_constant`` the model, optimizer and objective are reset (and the EMA really cleared, unlike SAR#4).

Constants scaled by C: E0 = 0.4 ln C and, by default, reset_constant = 0.2 * ln C / ln 1000 (the official
0.2 is for ImageNet's entropy scale; it is configurable, the official code hard-codes it).
"""
from __future__ import annotations

import torch

from ..objectives import entropy
from .base import Adapter
from .constants import reliability_threshold, sar_reset_constant

__all__ = ["SAR"]


class SAR(Adapter):
    default_frozen = True
    two_pass = True

    def __init__(self, model, objective="em", *, e_margin: float | None = None, rho: float = 0.05,
                 reset_constant: float | None = None, ema_momentum: float = 0.9, **kwargs) -> None:
        super().__init__(model, objective, **kwargs)
        c = self.num_classes
        self.e_margin = float(e_margin) if e_margin is not None else reliability_threshold(c)
        self.rho = float(rho)
        self.reset_constant = float(reset_constant) if reset_constant is not None else sar_reset_constant(c)
        self.ema_momentum = float(ema_momentum)
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError(f"ema_momentum must lie in [0, 1), got {ema_momentum}")

    def init_method_state(self) -> None:
        self.ema: float | None = None
        self.num_recoveries = 0

    def method_state(self) -> dict:
        return {"ema": self.ema, "recoveries": self.num_recoveries}

    def load_method_state(self, state: dict) -> None:
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.num_recoveries = int(state["recoveries"])

    @torch.no_grad()
    def _perturb(self) -> list[torch.Tensor]:
        """Climb to theta + rho g / ||g||; returns copies of theta (restored exactly, as the official SAM does:
        (theta + e) - e is not theta in floating point)."""
        grads = [p.grad for _, p in self.params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads if g is not None]))
        scale = self.rho / (norm + 1e-12)
        old = []
        for (_, p), g in zip(self.params, grads):
            old.append(p.detach().clone())
            if g is not None:
                p.add_(g * scale)
        return old

    def adapt_batch(self, x: torch.Tensor) -> torch.Tensor:
        assert self.optimizer is not None
        logits = self.net(x)
        ent = entropy(logits.detach())
        s1 = ent < self.e_margin
        n1 = int(s1.sum())
        diag = {"n": x.shape[0], "entropy": ent.mean(), "reliable": n1, "selected": 0, "recovered": False,
                "updated": False}
        if n1 == 0:
            return self.skip_update(logits, diag)
        loss1 = self.objective_loss(logits, s1)[s1].mean()
        loss1.backward()
        theta = self._perturb()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            logits2 = self.net(x)
            ent2 = entropy(logits2.detach())
            s2 = s1 & (ent2 < self.e_margin)
            n2 = int(s2.sum())
            if n2:
                loss2 = self.objective_loss(logits2, s2, update=False)[s2].mean()
                loss2.backward()
        finally:  # back to theta, also when the second pass fails
            with torch.no_grad():
                for (_, p), t in zip(self.params, theta):
                    p.copy_(t)
        if n2:
            self.optimizer.step()
            ent_value = float(ent2[s2].mean())
            self.ema = ent_value if self.ema is None else (
                self.ema_momentum * self.ema + (1 - self.ema_momentum) * ent_value)
        self.optimizer.zero_grad(set_to_none=True)
        diag.update(selected=n2, updated=bool(n2), loss=loss1.detach(), ema=self.ema if self.ema is not None
                    else float("nan"))
        if self.ema is not None and self.ema < self.reset_constant:
            recoveries = self.num_recoveries + 1
            self.reset()
            self.num_recoveries = recoveries
            diag["recovered"] = True
        self._diag = diag
        return logits.detach()
