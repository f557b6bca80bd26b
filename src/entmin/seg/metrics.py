"""Segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

The confusion matrix is accumulated with one ``bincount`` per batch (C * target + prediction over valid
pixels), so a whole domain costs O(pixels) and the metrics are exact sums, independent of the batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["SegMetrics", "confusion_matrix"]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """(C, C) int64 counts, rows = true class, columns = predicted class; ``ignore_index`` pixels skipped."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    t, p = target.reshape(-1), pred.reshape(-1)
    keep = (t >= 0) & (t < num_classes)
    if ignore_index is not None:
        keep &= t != ignore_index
    return torch.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).reshape(
        num_classes, num_classes).cpu()


@dataclass
class SegMetrics:
    num_classes: int
    ignore_index: int | None = None
    cm: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    def update(self, logits_or_pred: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits_or_pred.argmax(1) if logits_or_pred.dim() == target.dim() + 1 else logits_or_pred
        self.cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def iou(self) -> torch.Tensor:
        """Per-class IoU; NaN for a class absent from both target and prediction (left out of the mean)."""
        tp = self.cm.diag().double()
        union = self.cm.sum(0).double() + self.cm.sum(1).double() - tp
        return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))

    def miou(self) -> float:
        return float(self.iou().nanmean())

    def pixel_accuracy(self) -> float:
        return float(self.cm.diag().sum() / self.cm.sum().clamp_min(1))

    def summary(self) -> dict[str, object]:
        return {"miou": self.miou(), "pixel_accuracy": self.pixel_accuracy(),
                "iou": [None if math.isnan(v) else round(v, 6) for v in self.iou().tolist()]}
