"""Label-free accuracy baselines on the softmax outputs of the source model (wf_mixent_spec.md A6).

All estimators share one interface: ``fit(id_logits, id_labels)`` on labelled in-distribution data, then
``estimate(target_logits) -> accuracy in [0, 1]`` on unlabelled target data.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["BASELINES", "COT", "AverageConfidence", "AverageThresholdedConfidence", "DifferenceOfConfidences"]


def _probs(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty (N, C) tensor, got shape {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or Inf")
    return torch.softmax(logits.double(), dim=1)


class AverageConfidence:
    """AC (Hendrycks & Gimpel): the mean max-softmax probability. Needs no labels."""

    name = "AC"

    def fit(self, id_logits: torch.Tensor | None = None, id_labels: torch.Tensor | None = None) -> AverageConfidence:
        return self

    def estimate(self, logits: torch.Tensor) -> float:
        return float(_probs(logits).max(1).values.mean())


class DifferenceOfConfidences:
    """DoC (Guillory et al.): ID accuracy minus the drop of average confidence from ID to target."""

    name = "DoC"

    def fit(self, id_logits: torch.Tensor, id_labels: torch.Tensor) -> DifferenceOfConfidences:
        p = _probs(id_logits)
        self.id_acc = float((p.argmax(1) == id_labels).double().mean())
        self.id_conf = float(p.max(1).values.mean())
        return self

    def estimate(self, logits: torch.Tensor) -> float:
        return float(np.clip(self.id_acc - (self.id_conf - float(_probs(logits).max(1).values.mean())), 0, 1))


class AverageThresholdedConfidence:
    """ATC (Garg et al.): threshold t on ID data such that the fraction of scores above t equals the ID
    accuracy; the estimate is the fraction of target scores above t. Score: max-softmax (``"mc"``) or
    negative entropy (``"ne"``)."""

    def __init__(self, score: str = "mc") -> None:
        if score not in ("mc", "ne"):
            raise ValueError(f"ATC score must be 'mc' or 'ne', got {score!r}")
        self.score = score
        self.name = f"ATC-{score.upper()}"

    def _scores(self, logits: torch.Tensor) -> np.ndarray:
        p = _probs(logits)
        if self.score == "mc":
            return p.max(1).values.numpy()
        return (p * torch.log(p.clamp_min(1e-300))).sum(1).numpy()

    def fit(self, id_logits: torch.Tensor, id_labels: torch.Tensor) -> AverageThresholdedConfidence:
        s = self._scores(id_logits)
        acc = float((id_logits.argmax(1) == id_labels).double().mean())
        # fraction above t equals acc  <=>  t is the (1 - acc) quantile of the ID scores
        self.threshold = float(np.quantile(s, 1.0 - acc))
        return self

    def estimate(self, logits: torch.Tensor) -> float:
        return float((self._scores(logits) > self.threshold).mean())


class COT:
    """Confidence Optimal Transport (Lu et al.): the error is the optimal-transport cost between the target
    softmax vectors and one-hot vectors distributed by the ID label marginal, with the l-infinity cost
    ||p - e_y||_inf; solved exactly as an assignment problem (scipy) on at most ``max_samples`` targets."""

    name = "COT"

    def __init__(self, max_samples: int = 1000, seed: int = 0) -> None:
        self.max_samples, self.seed = max_samples, seed

    def fit(self, id_logits: torch.Tensor, id_labels: torch.Tensor) -> COT:
        c = id_logits.shape[1]
        self.marginal = torch.bincount(id_labels, minlength=c).double().numpy()
        self.marginal /= self.marginal.sum()
        return self

    def estimate(self, logits: torch.Tensor) -> float:
        p = _probs(logits).numpy()
        rng = np.random.default_rng(self.seed)
        if len(p) > self.max_samples:
            p = p[rng.choice(len(p), self.max_samples, replace=False)]
        n, c = p.shape
        counts = np.floor(self.marginal * n).astype(int)
        counts[np.argsort(-(self.marginal * n - counts))[: n - counts.sum()]] += 1  # largest remainders
        labels = np.repeat(np.arange(c), counts)
        # ||p - e_y||_inf = max(1 - p_y, max_{j != y} p_j)
        top2 = np.sort(p, axis=1)[:, -2:]
        pmax, argmax = top2[:, 1], p.argmax(1)
        other_max = np.where(argmax[:, None] == labels[None, :], top2[:, 0:1], pmax[:, None])
        cost = np.maximum(1.0 - p[:, labels], other_max)
        rows, cols = linear_sum_assignment(cost)
        return float(np.clip(1.0 - cost[rows, cols].mean(), 0, 1))


BASELINES = {"AC": AverageConfidence, "DoC": DifferenceOfConfidences,
             "ATC-MC": lambda: AverageThresholdedConfidence("mc"),
             "ATC-NE": lambda: AverageThresholdedConfidence("ne"), "COT": COT}
