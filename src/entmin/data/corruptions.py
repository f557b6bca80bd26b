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

__all__ = ["CORRUPTIONS", "CORRUPTION_VERSION", "SEVERITIES", "corrupt", "corruption_code", "frost_source",
           "plasma_fractal"]

SEVERITIES = (1, 2, 3, 4, 5)
# Bump whenever a change of this module changes any corrupted pixel: it keys the split cache and the results
# store (tests/test_data.py pins the output of every corruption, so a silent change fails there first).
CORRUPTION_VERSION = 1


def _to_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def _clip(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


# ----- noise ----------------------------------------------------------------------------------------------
def gaussian_noise(x, s, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    return _clip(x + torch.from_numpy(rng.normal(size=x.shape, scale=c).astype(np.float32)))


def shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return _clip(torch.from_numpy((rng.poisson(_to_np(x) * c) / c).astype(np.float32)))


def impulse_noise(x, s, rng):
    """skimage's 's&p': a fraction ``amount`` of pixels set to 0 or 1 with equal probability."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    u = torch.from_numpy(rng.random(size=x.shape).astype(np.float32))
    salt = torch.from_numpy(rng.random(size=x.shape).astype(np.float32)) < 0.5
    hit = u < c
    return torch.where(hit & salt, torch.ones_like(x), torch.where(hit, torch.zeros_like(x), x))


# ----- blur -----------------------------------------------------------------------------------------------
def _gauss_kernel1d(sigma: float, radius: int) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-t ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    lin = np.arange(-8, 9)
    xx, yy = np.meshgrid(lin, lin)
    d = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    d /= d.sum()
    g = _gauss_kernel1d(alias_blur, 1)  # cv2.GaussianBlur(ksize=(3, 3), sigma): separable, reflect-101
    d = ndimage.convolve1d(ndimage.convolve1d(d, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    return d


def _conv_same(x: torch.Tensor, kernel: np.ndarray, mode: str = "reflect") -> torch.Tensor:
    k = torch.from_numpy(kernel.astype(np.float32))[None, None]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode=mode), k)


def defocus_blur(x, s, rng):
    r, a = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    return _clip(_conv_same(x, _disk(r, a)))


def _gaussian(xn: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(xn, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)


def glass_blur(x, s, rng):
    """Blur, then jitter pixels locally (the reference's sequential loop, vectorised over the batch)."""
    sigma, delta, iters = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    n, _, h, w = x.shape
    img = np.uint8(_gaussian(_to_np(x), sigma) * 255)[:, 0].copy()
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
    out = _gaussian(img[:, None].astype(np.float32) / 255.0, sigma)
    return _clip(torch.from_numpy(out.astype(np.float32)))


def _motion_kernels(radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
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


def _motion_blur(x: torch.Tensor, radius: int, sigma: float, angles: np.ndarray) -> torch.Tensor:
    n, c, h, w = x.shape
    k = torch.from_numpy(_motion_kernels(radius, sigma, angles))[:, None]  # (N, 1, k, k)
    p = k.shape[-1] // 2
    xp = F.pad(x.reshape(1, n * c, h, w), (p, p, p, p), mode="replicate")
    return F.conv2d(xp, k.repeat_interleave(c, 0), groups=n * c).reshape(n, c, h, w)


def motion_blur(x, s, rng):
    r, sg = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    return _clip(_motion_blur(x, r, sg, rng.uniform(-45, 45, size=x.shape[0])))


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by ``factor`` keeping the size (bilinear, as scipy zoom order=1)."""
    h = x.shape[-1]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = x[..., top:top + ch, top:top + ch]
    out = F.interpolate(crop, scale_factor=factor, mode="bilinear", align_corners=False)
    trim = (out.shape[-1] - h) // 2
    return out[..., trim:trim + h, trim:trim + h]


def zoom_blur(x, s, rng):
    factors = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
               np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][s - 1]
    out = torch.zeros_like(x)
    for f in factors:
        out += _clipped_zoom(x, float(f))
    return _clip((x + out) / (len(factors) + 1))


# ----- weather --------------------------------------------------------------------------------------------
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


def _mapsize(h: int) -> int:
    return 1 << int(np.ceil(np.log2(max(h, 2))))


def fog(x, s, rng):
    c0, c1 = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    n, _, h, w = x.shape
    plasma = plasma_fractal(n, _mapsize(max(h, w)), c1, rng)[:, :h, :w]
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    y = x + c0 * torch.from_numpy(plasma.astype(np.float32))[:, None]
    return _clip(y * max_val / (max_val + c0))


def snow(x, s, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    n, _, h, w = x.shape
    layer = torch.from_numpy(rng.normal(loc=c[0], scale=c[1], size=(n, 1, h, w)).astype(np.float32))
    layer = _clipped_zoom(layer, c[2])
    layer = torch.where(layer < c[3], torch.zeros_like(layer), layer)
    layer = torch.round(_clip(layer) * 255) / 255  # the reference round-trips the layer through a uint8 PNG
    layer = _motion_blur(layer, c[4], c[5], rng.uniform(-135, -45, size=n))
    layer = torch.round(_clip(layer) * 255) / 255
    y = c[6] * x + (1 - c[6]) * torch.maximum(x, x * 1.5 + 0.5)
    return _clip(y + layer + torch.rot90(layer, 2, dims=(2, 3)))


# ----- digital --------------------------------------------------------------------------------------------
def brightness(x, s, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    return _clip(x + c)  # HSV value channel of a grey image is the grey value


def contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    means = x.mean(dim=(1, 2, 3), keepdim=True)
    return _clip((x - means) * c + means)


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
    return _clip(img)


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
    arr = np.uint8(np.round(_to_np(x)[:, 0] * 255))
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
