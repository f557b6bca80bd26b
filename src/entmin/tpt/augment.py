"""TPT's AugMix views (used by the original for its non-ImageNet test sets), on tensors, drawn from one generator.

As TPT's ``augmix`` (after Hendrycks et al. 2020, severity 1): a random resized crop with flip, then three chains
of one to three operations (autocontrast, equalize, rotate, solarize, shear x/y, translate x/y, posterize) mixed
with Dirichlet(1, 1, 1) weights, and the mix blended with the crop by a Beta(1, 1) weight. The operations are
PIL's in the original; here they act on float tensors in [0, 1] (equalize and posterize on 256 levels), since
no library offers this exact mixture on tensors with an explicit generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .tpt import random_resized_crops

__all__ = ["AUGMIX_OPS", "augmix_views", "batch_crops"]


def _level(g: torch.Generator, severity: int) -> float:
    return float(torch.empty(1).uniform_(0.1, severity, generator=g))


def _sign(g: torch.Generator) -> float:
    return 1.0 if bool(torch.rand(1, generator=g) < 0.5) else -1.0


def _affine(x: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    theta = torch.tensor([matrix], dtype=x.dtype)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    return F.grid_sample(x.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def _autocontrast(x, g, s):
    lo, hi = x.amin((-2, -1), keepdim=True), x.amax((-2, -1), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-8), x)


def _equalize(x, g, s):
    q = (x * 255).round().long().clamp(0, 255)
    out = torch.empty_like(x)
    for c in range(x.shape[0]):
        hist = torch.bincount(q[c].flatten(), minlength=256).float()
        cdf = hist.cumsum(0)
        span = cdf[-1] - cdf[hist > 0][0]
        out[c] = x[c] if span <= 0 else ((cdf[q[c]] - cdf[hist > 0][0]) / span).clamp(0, 1)
    return out


def _rotate(x, g, s):
    deg = int(_level(g, s) * 30 / 10) * _sign(g)
    a = math.radians(deg)
    return _affine(x, [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])


def _solarize(x, g, s):
    threshold = (256 - int(_level(g, s) * 256 / 10)) / 255
    return torch.where(x >= threshold, 1 - x, x)


def _shear(axis):
    def op(x, g, s):
        k = _level(g, s) * 0.3 / 10 * _sign(g)
        return _affine(x, [[1.0, k, 0.0], [0.0, 1.0, 0.0]] if axis == 0 else [[1.0, 0.0, 0.0], [k, 1.0, 0.0]])
    return op


def _translate(axis):
    def op(x, g, s):
        pixels = int(_level(g, s) * (x.shape[-1] / 3) / 10) * _sign(g)
        t = 2 * pixels / x.shape[-1 if axis == 0 else -2]
        return _affine(x, [[1.0, 0.0, t], [0.0, 1.0, 0.0]] if axis == 0 else [[1.0, 0.0, 0.0], [0.0, 1.0, t]])
    return op


def _posterize(x, g, s):
    bits = 4 - int(_level(g, s) * 4 / 10)
    shift = 8 - bits
    return (((x * 255).round().long() >> shift) << shift).float() / 255


AUGMIX_OPS = {"autocontrast": _autocontrast, "equalize": _equalize, "rotate": _rotate, "solarize": _solarize,
              "shear_x": _shear(0), "shear_y": _shear(1), "translate_x": _translate(0), "translate_y": _translate(1),
              "posterize": _posterize}


def augmix_views(image: torch.Tensor, n: int, g: torch.Generator, severity: int = 1) -> torch.Tensor:
    """``n`` AugMix views of ``image`` (C, H, W) in [0, 1]; a drop-in ``augment`` for :class:`~entmin.tpt.TPT`."""
    ops = list(AUGMIX_OPS.values())
    crops = random_resized_crops(image, n, g)
    out = []
    for crop in crops:
        w = _dirichlet3(g)
        m = float(torch.rand(1, generator=g))                     # Beta(1, 1) is uniform
        mix = torch.zeros_like(crop)
        for i in range(3):
            x = crop
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                x = ops[int(torch.randint(len(ops), (1,), generator=g))](x, g, severity)
            mix += w[i] * x
        out.append(m * crop + (1 - m) * mix)
    return torch.stack(out)


def _dirichlet3(g: torch.Generator) -> torch.Tensor:
    """Dirichlet(1, 1, 1) from ``g``: normalised Exp(1) draws (torch's Dirichlet sampler takes no generator)."""
    e = -torch.log(torch.rand(3, generator=g).clamp_min(1e-12))
    return e / e.sum()


def batch_crops(x: torch.Tensor, g: torch.Generator, min_scale: float) -> torch.Tensor:
    """A random resized crop (area fraction in [min_scale, 1], aspect ratio in [3/4, 4/3]) and a random
    horizontal flip of every image of the batch, in one ``grid_sample`` (per-image Python loops are slow)."""
    n = len(x)
    area = torch.empty(n).uniform_(min_scale, 1.0, generator=g)
    log_r = torch.empty(n).uniform_(-0.2877, 0.2877, generator=g)        # log(3/4), log(4/3)
    sx = (area * log_r.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_r.exp()).sqrt().clamp(max=1.0)
    tx = (torch.rand(n, generator=g) * 2 - 1) * (1 - sx)
    ty = (torch.rand(n, generator=g) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
