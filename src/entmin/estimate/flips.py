"""Weighted Flips (The Entropy Enigma, ICML'24; wf_mixent_spec.md A2-A4).

1. Probe set: ``probe_size`` unlabelled target images; record the arg-max and max-softmax confidence of the
   adapting model before any update (BatchNorm with batch statistics, as in RDumb).
2. Adapt with RDumb (ETA filters and weights, E0 = 0.4 ln C, SGD momentum 0.9, model reset every
   ``reset_every`` steps) for ``steps`` steps on the shuffled unlabelled stream (re-shuffled when exhausted).
3. Re-predict the probe set; flip_i = changed arg-max. WF = sum_i flip_i * c_i with c_i the percentile rank of
   the *initial* confidence (ascending, average ties): flips of confident images count more.
4. accuracy = f(WF), f a polynomial fitted on labelled calibration shifts, clipped to [0, 1] (the paper
   clips to [0, 100]; its code does not).
Scale choices for small data are parameters: ``steps`` (paper 990 on ImageNet), ``probe_size`` (1000).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ..adapt import make_adapter

__all__ = ["FlipsConfig", "PolynomialMap", "flip_statistics", "measure_flips"]


def flip_statistics(initial_probs: torch.Tensor, final_pred: torch.Tensor) -> tuple[float, int]:
    """(weighted flips, unweighted flips) from the probe's initial softmax and final arg-max."""
    if initial_probs.dim() != 2 or final_pred.shape != initial_probs.shape[:1]:
        raise ValueError(f"need initial probs (N, C) and final predictions (N,), got {tuple(initial_probs.shape)} "
                         f"and {tuple(final_pred.shape)}")
    conf, pred = initial_probs.max(1)
    ranks = rankdata(conf.double().numpy(), method="average") / len(conf)
    flips = (pred != final_pred).numpy()
    return float((flips * ranks).sum()), int(flips.sum())


@dataclass(frozen=True)
class FlipsConfig:
    probe_size: int = 1000
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    reset_every: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.probe_size < 10:
            raise ValueError(f"probe_size must be >= 10 (flip counts of fewer images are noise), got {self.probe_size}")
        if self.steps < 1 or self.batch_size < 2 or not self.lr > 0 or self.reset_every < 1:
            raise ValueError("steps >= 1, batch_size >= 2, lr > 0 and reset_every >= 1 are required")


@torch.no_grad()
def _predict(adapter, x: torch.Tensor, device, chunk: int = 100) -> torch.Tensor:
    out = [torch.softmax(adapter.model(x[i:i + chunk].to(device)).float(), 1).cpu() for i in range(0, len(x), chunk)]
    return torch.cat(out)


def measure_flips(model_factory: Callable[[], nn.Module], images: torch.Tensor, cfg: FlipsConfig = FlipsConfig(),
                  device: str | torch.device = "cpu") -> dict[str, float]:
    """Run the WF procedure on unlabelled ``images``; returns weighted and unweighted flips (and the probe size)."""
    n = len(images)
    if n < cfg.probe_size:
        raise ValueError(f"the dataset has {n} images, fewer than the probe set ({cfg.probe_size}); lower probe_size")
    g = torch.Generator().manual_seed(cfg.seed)
    probe = images[torch.randperm(n, generator=g)[: cfg.probe_size]]
    adapter = make_adapter("eta", model_factory().to(device), "em", optimizer={"lr": cfg.lr}, seed=cfg.seed)
    initial = _predict(adapter, probe, device)
    step, order, pos = 0, torch.randperm(n, generator=g), 0
    while step < cfg.steps:
        if pos + cfg.batch_size > n:
            order, pos = torch.randperm(n, generator=g), 0
        adapter(images[order[pos:pos + cfg.batch_size]].to(device))
        pos += cfg.batch_size
        step += 1
        if step % cfg.reset_every == 0:
            adapter.reset()
    final = _predict(adapter, probe, device).argmax(1)
    wf, uf = flip_statistics(initial, final)
    return {"weighted_flips": wf, "flips": float(uf), "probe_size": float(cfg.probe_size)}


class PolynomialMap:
    """accuracy = clip(poly(statistic), 0, 1), fitted by least squares (numpy.polyfit)."""

    def __init__(self, degree: int = 2, coefficients: list[float] | None = None, scale: float = 1.0) -> None:
        self.degree = degree
        self.coef = np.asarray(coefficients, dtype=float) if coefficients is not None else None
        self.scale = scale  # e.g. 0.01 for presets whose output is in percent

    def fit(self, stats: np.ndarray, accs: np.ndarray) -> PolynomialMap:
        stats, accs = np.asarray(stats, float), np.asarray(accs, float)
        if len(stats) < self.degree + 1:
            raise ValueError(f"a degree-{self.degree} fit needs at least {self.degree + 1} calibration points, "
                             f"got {len(stats)}")
        if np.ptp(accs) < 0.05:
            import warnings

            warnings.warn(f"calibration accuracies span only {np.ptp(accs):.3f}: the fitted map will extrapolate "
                          "badly; add calibration shifts covering a wider range of accuracies", RuntimeWarning,
                          stacklevel=2)
        self.coef = np.polyfit(stats, accs, self.degree)
        self.scale = 1.0
        return self

    def __call__(self, stat: float | np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise ValueError("PolynomialMap is not fitted")
        return np.clip(np.polyval(self.coef, stat) * self.scale, 0.0, 1.0)
