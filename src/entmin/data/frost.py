"""The frost layer of the frost corruption: the reference's photographs when the ``imagecorruptions`` wheel is
installed (read without importing it), a procedural ice texture otherwise or with ``ENTMIN_FROST=procedural``.
Which one is used is part of :func:`corruption_code`, and so of every cache key and result provenance."""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from .image_ops import clip01, mapsize, plasma_fractal

__all__ = ["FROST_ENV", "corruption_code", "frost", "frost_source"]

FROST_ENV = "ENTMIN_FROST"


def _frost_texture(n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural ice: ridged plasma noise (bright thin veins) plus fine grain, mean brightness ~0.45."""
    size = mapsize(max(h, w) * 2)
    p = plasma_fractal(n, size, 1.6, rng)
    ridges = (1.0 - np.abs(2.0 * p - 1.0)) ** 3
    grain = plasma_fractal(n, size, 1.1, rng)
    tex = 0.65 * ridges + 0.35 * grain
    oy, ox = rng.integers(0, size - h + 1, size=n), rng.integers(0, size - w + 1, size=n)
    out = np.stack([tex[i, oy[i]:oy[i] + h, ox[i]:ox[i] + w] for i in range(n)])
    out = out / np.maximum(out.mean(axis=(1, 2), keepdims=True), 1e-6) * 0.45
    return np.clip(out, 0, 1)


def frost(x, s, rng):
    """ImageNet-C frost at severity ``s`` with the 32-pixel constants: c0 x + c1 frost layer."""
    c0, c1 = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    n, _, h, w = x.shape
    d = _frost_photo_dir() if frost_source() != "procedural" else None
    photos = _frost_photos(str(d), h) if d is not None else None
    if photos is None:
        tex = _frost_texture(n, h, w, rng)
    else:  # make_cifar_c.py: one of the first five photos, a random crop
        picks = rng.integers(0, 5, size=n)
        tex = np.empty((n, h, w), np.float32)
        for i, k in enumerate(picks):
            ph = photos[k]
            oy, ox = rng.integers(0, ph.shape[0] - h), rng.integers(0, ph.shape[1] - w)
            tex[i] = ph[oy:oy + h, ox:ox + w]
    return clip01(c0 * x + c1 * torch.from_numpy(tex.astype(np.float32))[:, None])


def _frost_photo_dir() -> Path | None:
    """The ``frost`` folder of an installed ``imagecorruptions`` (found without importing the package, whose
    ``__init__`` needs an old setuptools)."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        d = Path(loc) / "frost"
        if all((d / f).is_file() for f in _FROST_FILES):
            return d
    return None


_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


def frost_source() -> str:
    """``"imagecorruptions-<version>"`` when its frost photos are used, else ``"procedural"``."""
    if os.environ.get(FROST_ENV, "").lower() == "procedural" or _frost_photo_dir() is None:
        return "procedural"
    try:
        from importlib.metadata import version

        return f"imagecorruptions-{version('imagecorruptions')}"
    except Exception:  # a source checkout without metadata
        return "imagecorruptions"


def corruption_code() -> str:
    """What the corrupted pixels depend on besides the data and the seed: the code version and the frost layer."""
    from .corruptions import CORRUPTION_VERSION

    return f"v{CORRUPTION_VERSION}-frost-{frost_source()}"


@functools.lru_cache(maxsize=4)
def _frost_photos(folder: str, h: int) -> list[np.ndarray]:
    """The five frost photos as grey float arrays in [0, 1], resized by 0.2 per 32 pixels of image height."""
    from PIL import Image

    d = Path(folder)
    out = []
    for name in _FROST_FILES:
        with Image.open(d / name) as im:
            g = im.convert("L")
            scale = 0.2 * h / 32
            g = g.resize((max(h + 1, round(g.width * scale)), max(h + 1, round(g.height * scale))),
                         Image.BILINEAR)
            out.append(np.asarray(g, dtype=np.float32) / 255.0)
    return out


