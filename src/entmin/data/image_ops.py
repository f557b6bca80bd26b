"""Image primitives of the corruptions: kernels, convolutions, zoom and the plasma fractal.

Kept apart from :mod:`entmin.data.corruptions` so that that module reads as the 15 corruptions and their
constants, and so that :mod:`entmin.data.frost` can use the fractal without a circular import. Every function
here is deterministic given its inputs (and the ``numpy.random.Generator`` where it takes one); a change that
alters a pixel must bump ``CORRUPTION_VERSION`` (tests/test_data.py pins the corrupted outputs).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["clip01", "clipped_zoom", "conv_same", "disk_kernel", "gauss_kernel1d", "gaussian_filter_hw",
           "mapsize", "motion_blur_batch", "motion_kernels", "plasma_fractal", "to_np"]


def to_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def clip01(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


def gauss_kernel1d(sigma: float, radius: int) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-t ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    lin = np.arange(-8, 9)
    xx, yy = np.meshgrid(lin, lin)
    d = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    d /= d.sum()
    g = gauss_kernel1d(alias_blur, 1)  # cv2.GaussianBlur(ksize=(3, 3), sigma): separable, reflect-101
    d = ndimage.convolve1d(ndimage.convolve1d(d, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    return d


def conv_same(x: torch.Tensor, kernel: np.ndarray, mode: str = "reflect") -> torch.Tensor:
    k = torch.from_numpy(kernel.astype(np.float32))[None, None]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode=mode), k)


def gaussian_filter_hw(xn: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(xn, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)


def motion_kernels(radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    width = 2 * int(np.ceil(radius)) + 1
    size = 2 * width + 1
    ks = np.zeros((len(angles_deg), size, size), dtype=np.float32)
    taps = np.arange(width)
    weights = np.exp(-taps ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    rad = np.deg2rad(angles_deg)[:, None]
    dy = np.rint(taps[None] * np.sin(rad)).astype(int) + width
    dx = np.rint(taps[None] * np.cos(rad)).astype(int) + width
    for i in range(len(angles_deg)):
        np.add.at(ks[i], (dy[i], dx[i]), weights)
    return ks


def motion_blur_batch(x: torch.Tensor, radius: int, sigma: float, angles: np.ndarray) -> torch.Tensor:
    n, c, h, w = x.shape
    k = torch.from_numpy(motion_kernels(radius, sigma, angles))[:, None]  # (N, 1, k, k)
    p = k.shape[-1] // 2
    xp = F.pad(x.reshape(1, n * c, h, w), (p, p, p, p), mode="replicate")
    return F.conv2d(xp, k.repeat_interleave(c, 0), groups=n * c).reshape(n, c, h, w)


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by ``factor`` keeping the size (bilinear, as scipy zoom order=1)."""
    h = x.shape[-1]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = x[..., top:top + ch, top:top + ch]
    out = F.interpolate(crop, scale_factor=factor, mode="bilinear", align_corners=False)
    trim = (out.shape[-1] - h) // 2
    return out[..., trim:trim + h, trim:trim + h]


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square fractal noise in [0, 1], (n, mapsize, mapsize); the reference algorithm, batched."""
    assert mapsize & (mapsize - 1) == 0
    m = np.zeros((n, mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corner = m[:, 0:mapsize:step, 0:mapsize:step]
        sq = corner + np.roll(corner, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half:mapsize:step, half:mapsize:step] = wibbled(sq)
        dr = m[:, half:mapsize:step, half:mapsize:step]
        ul = m[:, 0:mapsize:step, 0:mapsize:step]
        m[:, 0:mapsize:step, half:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2))
        m[:, half:mapsize:step, 0:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1))
        step //= 2
        wibble /= wibbledecay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def mapsize(h: int) -> int:
    return 1 << int(np.ceil(np.log2(max(h, 2))))
