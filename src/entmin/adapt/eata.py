"""ETA and EATA (Niu et al., ICML'22): reliable + non-redundant sample selection, entropy re-weighting and,
for EATA, a Fisher-weighted anti-forgetting penalty.

Constants are scaled by the class count C (:mod:`entmin.adapt.constants`): E0 = 0.4 ln C (reliability threshold
and re-weighting margin) and the redundancy margin 0.05 * sqrt(1000 / C); both are options.

Like the official code, no step is taken when the filters empty the batch (it checks the selection before
stepping). Fixed relative to it: the moving average ``m`` is cleared by ``reset()``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from ..objectives import entropy
from .base import Adapter
from .constants import eta_redundancy_margin, reliability_threshold

__all__ = ["EATA", "ETA", "compute_fisher"]


class ETA(Adapter):

    def __init__(self, model, objective="em", *, e_margin: float | None = None, d_margin: float | None = None,
                 select: bool = True, reweight: bool = True, **kwargs) -> None:
        """``select=False`` keeps every sample (no reliability or redundancy filter) and ``reweight=False`` weighs
        every kept sample 1 instead of exp(E0 - H): switches for ablating what the host adds to its objective
        (ETA with neither is Tent)."""
        super().__init__(model, objective, **kwargs)
        self.use_selection, self.use_reweight = bool(select), bool(reweight)
        c = self.num_classes
        self.e_margin = float(e_margin) if e_margin is not None else reliability_threshold(c)
        self.d_margin = float(d_margin) if d_margin is not None else eta_redundancy_margin(c)
        if not self.e_margin > 0:
            raise ValueError(f"e_margin must be > 0, got {self.e_margin}")
        if not self.d_margin > 0:
            raise ValueError(f"d_margin must be > 0, got {self.d_margin}")

    def init_method_state(self) -> None:
        self.mean_probs: torch.Tensor | None = None
        self.num_updates_reliable = 0
        self.num_updates_final = 0

    def method_state(self) -> dict:
        return {"mean_probs": self.mean_probs, "reliable": self.num_updates_reliable,
                "final": self.num_updates_final}

    def load_method_state(self, state: dict) -> None:
        self.mean_probs = state["mean_probs"]
        self.num_updates_reliable, self.num_updates_final = int(state["reliable"]), int(state["final"])

    def select(self, logits: torch.Tensor, ent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (N,) of the reliable samples and of the reliable and non-redundant ones."""
        reliable = ent < self.e_margin
        probs = logits.softmax(1)
        if not self.use_selection:
            final = torch.ones_like(reliable)
        elif self.mean_probs is None:
            final = reliable
        else:
            cos = F.cosine_similarity(self.mean_probs.unsqueeze(0), probs, dim=1)
            final = reliable & (cos.abs() < self.d_margin)
        self._update_mean(probs[final])
        return reliable, final

    def _update_mean(self, probs: torch.Tensor) -> None:
        if probs.shape[0] == 0:
            return
        new = probs.mean(0)
        self.mean_probs = new if self.mean_probs is None else 0.9 * self.mean_probs + 0.1 * new

    def regulariser(self) -> torch.Tensor | None:
        return None

    def adapt_batch(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        with torch.no_grad():
            ent = entropy(logits.detach())
            reliable, final = self.select(logits.detach(), ent)
            weight = torch.exp(-(ent - self.e_margin)) if self.use_reweight else torch.ones_like(ent)
        n_reliable, n_final = int(reliable.sum()), int(final.sum())
        self.num_updates_reliable += n_reliable
        self.num_updates_final += n_final
        diag = {"n": x.shape[0], "entropy": ent.mean(), "reliable": n_reliable, "selected": n_final,
                "updated": False}
        # Called before the no-update branch so that AdaDEM's bank (bank_update="all") sees every batch.
        per_sample = self.objective_loss(logits, final)
        if n_final == 0:
            return self.skip_update(logits, diag)
        loss = (weight * per_sample)[final].mean()
        reg = self.regulariser()
        if reg is not None:
            loss = loss + reg
        self.step(loss)
        diag.update(loss=loss.detach(), updated=True)
        self._diag = diag
        return logits.detach()


def compute_fisher(model, params, batches: Iterable, device: torch.device, max_samples: int | None = None
                   ) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the trainable parameters from clean data: per batch, cross-entropy against the
    model's own arg-max labels, squared batch gradient; summed and divided by the number of batches (EATA)."""
    fisher = {n: torch.zeros_like(p) for n, p in params}
    n_batches = seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if max_samples is not None and seen >= max_samples:
            break
        if max_samples is not None:
            x = x[: max_samples - seen]
        x = x.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, logits.argmax(1).detach())
        grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        for (n, _), g in zip(params, grads):
            if g is not None:
                fisher[n] += g.detach() ** 2
        n_batches += 1
        seen += x.shape[0]
    if n_batches == 0:
        raise ValueError("EATA: the Fisher loader yielded no batch of clean samples")
    return {n: f / n_batches for n, f in fisher.items()}


class EATA(ETA):
    """ETA plus alpha * sum F (theta - theta0)^2, F from ``fisher_loader`` (clean in-distribution batches)."""

    def __init__(self, model, objective="em", *, fisher_loader: Iterable | None = None,
                 fisher_alpha: float = 2000.0, fisher_size: int | None = 2000, **kwargs) -> None:
        if fisher_loader is None:
            raise ValueError("EATA needs fisher_loader=: an iterable of clean (in-distribution) batches for the "
                             "Fisher regulariser; use 'eta' for the method without it")
        if not fisher_alpha >= 0:
            raise ValueError(f"fisher_alpha must be >= 0, got {fisher_alpha}")
        self._fisher_args = (fisher_loader, fisher_size)
        self.fisher_alpha = float(fisher_alpha)
        super().__init__(model, objective, **kwargs)

    def init_method_state(self) -> None:
        super().init_method_state()
        if not hasattr(self, "fisher"):
            loader, size = self._fisher_args
            self.fisher = compute_fisher(self.model, self.params, loader, self.device, size)
            self.anchor_params = {n: p.detach().clone() for n, p in self.params}
            self.optimizer.zero_grad(set_to_none=True)

    def regulariser(self) -> torch.Tensor:
        return self.fisher_alpha * sum((self.fisher[n] * (p - self.anchor_params[n]) ** 2).sum()
                                       for n, p in self.params)
