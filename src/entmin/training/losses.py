"""Training losses by name, as the objectives are: one registry instead of ``if cfg.loss == ...`` chains.

A loss sees the logits of one step (:class:`StepLogits`: labelled, weak and strong unlabelled views) and
returns the scalar to minimise; it says which views it needs, and may carry parameters of its own (MIN-ENT /
MIX-ENT's learnable betas, trained by their own Adam). How AdaDEM enters each semi-supervised method is written
in :mod:`entmin.training.entropy_training`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import AdaDEM, MinEnt, MixEnt, entropy

__all__ = ["LOSSES", "SEMI_METHODS", "SUPERVISED_LOSSES", "StepLogits", "TrainingLoss", "build_loss"]


@dataclass
class StepLogits:
    labelled: torch.Tensor
    targets: torch.Tensor
    weak: torch.Tensor | None = None      # unlabelled, weak view
    strong: torch.Tensor | None = None    # unlabelled, strong view (FixMatch)


class TrainingLoss(nn.Module):
    """Cross-entropy on the labelled batch; subclasses add their terms. ``unlabelled``/``strong_view``: which
    unlabelled views the training loop must produce."""

    unlabelled = False
    strong_view = False

    def __init__(self, num_classes: int, unsup_weight: float = 0.3, threshold: float = 0.95) -> None:
        super().__init__()
        self.num_classes, self.unsup_weight, self.threshold = num_classes, unsup_weight, threshold

    def forward(self, out: StepLogits) -> torch.Tensor:
        return F.cross_entropy(out.labelled, out.targets)


class LabelSmoothing(TrainingLoss):
    def forward(self, out: StepLogits) -> torch.Tensor:
        return F.cross_entropy(out.labelled, out.targets, label_smoothing=0.1)


class _Supervised(TrainingLoss):
    """MIN-ENT / MIX-ENT: the loss module's betas are learnable (softplus-positive)."""

    factory: Callable[[float, float], nn.Module] = MinEnt

    def __init__(self, num_classes: int, unsup_weight: float = 0.3, threshold: float = 0.95) -> None:
        super().__init__(num_classes, unsup_weight, threshold)
        self.inner = type(self).factory(1.0, 0.1)

    def forward(self, out: StepLogits) -> torch.Tensor:
        return self.inner(out.labelled, out.targets).mean()

    def betas(self) -> torch.Tensor:
        return self.inner.betas()


class MinEntLoss(_Supervised):
    factory = MinEnt


class MixEntLoss(_Supervised):
    factory = MixEnt


class SemiSupervised(TrainingLoss):
    """CE on labelled data only (the semi-supervised baseline that ignores the unlabelled batch's loss)."""

    unlabelled = True


class EntMin(SemiSupervised):
    """Ent. Min.: CE + w * mean EM on the unlabelled batch."""

    def forward(self, out: StepLogits) -> torch.Tensor:
        return super().forward(out) + self.unsup_weight * entropy(out.weak).mean()


class _PlusAdaDEM(TrainingLoss):
    """Adds w * mean AdaDEM on the weak unlabelled view to the loss it is mixed into (the bank persists over
    training, one module per run)."""

    def __init__(self, num_classes: int, unsup_weight: float = 0.3, threshold: float = 0.95) -> None:
        super().__init__(num_classes, unsup_weight, threshold)
        self.adadem = AdaDEM(num_classes)

    def forward(self, out: StepLogits) -> torch.Tensor:
        return super().forward(out) + self.unsup_weight * self.adadem(out.weak).mean()


class EntMinAdaDEM(_PlusAdaDEM, SemiSupervised):
    """Ent. Min. with its EM term replaced by AdaDEM (same weight): CE + w * mean AdaDEM."""


class FixMatch(SemiSupervised):
    """CE + confidence-masked CE of the strong view on the weak view's pseudo-labels."""

    strong_view = True

    def forward(self, out: StepLogits) -> torch.Tensor:
        with torch.no_grad():
            conf, pseudo = torch.softmax(out.weak.detach(), 1).max(1)
            keep = (conf >= self.threshold).float()
        consistency = (F.cross_entropy(out.strong, pseudo, reduction="none") * keep).mean()
        return F.cross_entropy(out.labelled, out.targets) + consistency


class FixMatchAdaDEM(_PlusAdaDEM, FixMatch):
    """FixMatch + w * mean AdaDEM on the weak view (AdaDEM added, App. B.2)."""


LOSSES: dict[str, type[TrainingLoss]] = {
    "ce": TrainingLoss, "min_ent": MinEntLoss, "mix_ent": MixEntLoss, "label_smoothing": LabelSmoothing,
    "supervised": SemiSupervised, "entmin": EntMin, "entmin_adadem": EntMinAdaDEM, "fixmatch": FixMatch,
    "fixmatch_adadem": FixMatchAdaDEM,
}
SUPERVISED_LOSSES = tuple(k for k, v in LOSSES.items() if not v.unlabelled)
SEMI_METHODS = tuple(k for k, v in LOSSES.items() if v.unlabelled)


def build_loss(name: str, num_classes: int, *, unsup_weight: float = 0.3, threshold: float = 0.95
               ) -> TrainingLoss:
    if name not in LOSSES:
        raise ValueError(f"unknown training loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](num_classes, unsup_weight, threshold)
