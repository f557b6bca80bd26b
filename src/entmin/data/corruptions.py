"""The 15 ImageNet-C corruption types at severities 1-5 with the 32-pixel constants of CIFAR-10-C
(hendrycks/robustness ``make_cifar_c.py``), written for batches of grey images in torch/numpy/scipy.

Input and output: float tensors (N, 1, H, W) in [0, 1]; every corruption is deterministic given a
``numpy.random.Generator``. Differences from the reference script, all deliberate:

* grey images: each corruption is applied to the single channel (for grey input the RGB->grey conversions
  of snow and the HSV value channel of brightness reduce to the pixel value itself);
* ImageMagick's motion blur (used by motion_blur and snow) is replaced by its kernel: a one-sided line of
  2r+1 taps with Gaussian weights exp(-i^2 / 2 sigma^2) along a random angle, edge pixels replicated;
* frost: the reference overlays crops of six frost photographs. They ship in the ``imagecorruptions`` wheel
  (Apache-2.0; ``pip install imagecorruptions --no-deps``, the ``[frost]`` extra): when it is installed its
  photos are used as the reference does (one of the first five, resized by 0.2 per 32 pixels, a random crop,
  converted to grey). Otherwise, or with ``ENTMIN_FROST=procedural``, the frost layer is a procedural
  "ridged plasma" ice texture with mean brightness about 0.45. Which one built a cache is part of its key
  (:func:`corruption_code`);
* pixelate uses area down-sampling and nearest up-sampling (PIL's BOX filter in both directions).
"""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .frost import corruption_code, frost, frost_source
from .image_ops import (
    clip01,
    clipped_zoom,
    conv_same,
    disk_kernel,
    gaussian_filter_hw,
    mapsize,
    motion_blur_batch,
    plasma_fractal,
    to_np,
)

__all__ = ["CORRUPTIONS", "CORRUPTION_VERSION", "SEVERITIES", "corrupt", "corruption_code", "frost_source",
           "plasma_fractal"]

SEVERITIES = (1, 2, 3, 4, 5)
# Bump whenever a change of this module changes any corrupted pixel: it keys the split cache and the results
# store (tests/test_data.py pins the output of every corruption, so a silent change fails there first).
CORRUPTION_VERSION = 1


# ----- noise ----------------------------------------------------------------------------------------------
def gaussian_noise(x, s, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    return clip01(x + torch.from_numpy(rng.normal(size=x.shape, scale=c).astype(np.float32)))


def shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return clip01(torch.from_numpy((rng.poisson(to_np(x) * c) / c).astype(np.float32)))


def impulse_noise(x, s, rng):
    """skimage's 's&p': a fraction ``amount`` of pixels set to 0 or 1 with equal probability."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    u = torch.from_numpy(rng.random(size=x.shape).astype(np.float32))
    salt = torch.from_numpy(rng.random(size=x.shape).astype(np.float32)) < 0.5
    hit = u < c
    return torch.where(hit & salt, torch.ones_like(x), torch.where(hit, torch.zeros_like(x), x))


# ----- blur -----------------------------------------------------------------------------------------------
def defocus_blur(x, s, rng):
    r, a = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    return clip01(conv_same(x, disk_kernel(r, a)))


def glass_blur(x, s, rng):
    """Blur, then jitter pixels locally (the reference's sequential loop, vectorised over the batch)."""
    sigma, delta, iters = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    n, _, h, w = x.shape
    img = np.uint8(gaussian_filter_hw(to_np(x), sigma) * 255)[:, 0].copy()
    rows = np.arange(n)
    for _ in range(iters):
        for hh in range(h - delta, delta, -1):
            for ww in range(w - delta, delta, -1):
                d = rng.integers(-delta, delta, size=(n, 2))
                hp, wp = hh + d[:, 1], ww + d[:, 0]
                # The reference writes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on numpy *views*: the second
                # assignment sees the already-updated pixel, so the net effect is a copy from the neighbour
                # (a local jitter), not a swap. A true swap lets pixels drift across the image.
                img[rows, hh, ww] = img[rows, hp, wp]
    out = gaussian_filter_hw(img[:, None].astype(np.float32) / 255.0, sigma)
    return clip01(torch.from_numpy(out.astype(np.float32)))


def motion_blur(x, s, rng):
    r, sg = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    return clip01(motion_blur_batch(x, r, sg, rng.uniform(-45, 45, size=x.shape[0])))


def zoom_blur(x, s, rng):
    factors = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
               np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][s - 1]
    out = torch.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, float(f))
    return clip01((x + out) / (len(factors) + 1))


# ----- weather --------------------------------------------------------------------------------------------
def fog(x, s, rng):
    c0, c1 = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    n, _, h, w = x.shape
    plasma = plasma_fractal(n, mapsize(max(h, w)), c1, rng)[:, :h, :w]
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    y = x + c0 * torch.from_numpy(plasma.astype(np.float32))[:, None]
    return clip01(y * max_val / (max_val + c0))


def snow(x, s, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    n, _, h, w = x.shape
    layer = torch.from_numpy(rng.normal(loc=c[0], scale=c[1], size=(n, 1, h, w)).astype(np.float32))
    layer = clipped_zoom(layer, c[2])
    layer = torch.where(layer < c[3], torch.zeros_like(layer), layer)
    layer = torch.round(clip01(layer) * 255) / 255  # the reference round-trips the layer through a uint8 PNG
    layer = motion_blur_batch(layer, c[4], c[5], rng.uniform(-135, -45, size=n))
    layer = torch.round(clip01(layer) * 255) / 255
    y = c[6] * x + (1 - c[6]) * torch.maximum(x, x * 1.5 + 0.5)
    return clip01(y + layer + torch.rot90(layer, 2, dims=(2, 3)))


# ----- digital --------------------------------------------------------------------------------------------
def brightness(x, s, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    return clip01(x + c)  # HSV value channel of a grey image is the grey value


def contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    means = x.mean(dim=(1, 2, 3), keepdim=True)
    return clip01((x - means) * c + means)


def elastic_transform(x, s, rng):
    n, _, h, w = x.shape
    size = float(min(h, w))
    c = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][s - 1]
    alpha, sigma, affine = c[0] * size, c[1] * size, c[2] * size
    # random affine from three jittered control points (cv2.getAffineTransform + warpAffine, reflect-101)
    cs, sq = np.float32([w, h]) // 2, min(h, w) // 3
    pts1 = np.float32([cs + sq, [cs[0] + sq, cs[1] - sq], cs - sq])
    pts2 = pts1[None] + rng.uniform(-affine, affine, size=(n, 3, 2)).astype(np.float32)
    src = np.concatenate([pts1, np.ones((3, 1), np.float32)], 1)           # (3, 3)
    mats = np.linalg.solve(src[None].repeat(n, 0), pts2).transpose(0, 2, 1)  # (n, 2, 3): src -> dst
    full = np.concatenate([mats, np.tile([[[0, 0, 1]]], (n, 1, 1))], 1)
    inv = np.linalg.inv(full)[:, :2]                                        # dst pixel -> src pixel
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    src_x = inv[:, 0, 0, None, None] * xx + inv[:, 0, 1, None, None] * yy + inv[:, 0, 2, None, None]
    src_y = inv[:, 1, 0, None, None] * xx + inv[:, 1, 1, None, None] * yy + inv[:, 1, 2, None, None]
    img = _sample(x, src_x, src_y)
    if alpha > 0:
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(n, h, w)), (0, sigma, sigma), mode="reflect",
                                     truncate=3.0) * alpha
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(n, h, w)), (0, sigma, sigma), mode="reflect",
                                     truncate=3.0) * alpha
        img = _sample(img, xx[None] + dx, yy[None] + dy)
    return clip01(img)


def _sample(x: torch.Tensor, px: np.ndarray, py: np.ndarray) -> torch.Tensor:
    h, w = x.shape[-2:]
    grid = np.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], axis=-1).astype(np.float32)
    return F.grid_sample(x, torch.from_numpy(grid), mode="bilinear", padding_mode="reflection", align_corners=True)


def pixelate(x, s, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[-2:]
    small = F.adaptive_avg_pool2d(x, (int(h * c), int(w * c)))
    return F.interpolate(small, size=(h, w), mode="nearest")


def jpeg_compression(x, s, rng):
    from PIL import Image

    q = [80, 65, 58, 50, 40][s - 1]
    arr = np.uint8(np.round(to_np(x)[:, 0] * 255))
    out = np.empty_like(arr)
    for i in range(arr.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(arr[i], mode="L").save(buf, format="JPEG", quality=q)
        out[i] = np.asarray(Image.open(buf))
    return torch.from_numpy(out.astype(np.float32) / 255.0)[:, None]


CORRUPTIONS: dict[str, Callable] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur,
    "snow": snow, "frost": frost, "fog": fog, "brightness": brightness, "contrast": contrast,
    "elastic_transform": elastic_transform, "pixelate": pixelate, "jpeg_compression": jpeg_compression,
}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to (N, 1, H, W) images in [0, 1]; deterministic in seed."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
    idx = list(CORRUPTIONS).index(name)
    rng = np.random.default_rng([seed, idx, severity])
    with torch.no_grad():
        out = CORRUPTIONS[name](images.float().cpu(), severity, rng)
    return out.to(torch.float32).contiguous()
