"""A segmentation task built from real images: 64 x 64 scenes with 1-4 Fashion-MNIST garments pasted at
random positions and scales, labelled per pixel (the garment's class where it is drawn, background elsewhere).

Deterministic in (source images, seed): each scene draws its garments, scales and positions from
``numpy.random.default_rng([seed, scene index])``. A later garment occludes an earlier one (its pixels and its
labels replace theirs), so every label matches the pixel it names. A garment pixel is one whose intensity in
the resized garment is above ``INK`` (Fashion-MNIST backgrounds are 0, so this is the garment's silhouette).

:class:`SceneData` caches the built scenes (clean and the 15 corruptions at a severity) under a key made of the
Fashion-MNIST fingerprint, :data:`SCENES_VERSION`, the scene parameters and the corruption code, and checks each
file's sha256 on load; a mismatch rebuilds, never serves other scenes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import default_cache_dir
from ..data.corruptions import CORRUPTIONS, corrupt, corruption_code
from ..data.fashion_mnist import data_fingerprint, load_fashion_mnist
from ..data.fingerprint import json_fingerprint, read_checksummed, write_checksummed
from ..errors import UsageError

__all__ = ["BACKGROUND", "INK", "NUM_SEG_CLASSES", "SCENES_VERSION", "STYLE_SHIFTS", "SceneData", "make_scenes"]

SCENES_VERSION = 1   # bump when a change here changes any scene pixel or label
BACKGROUND = 10      # garments keep their Fashion-MNIST label 0-9
NUM_SEG_CLASSES = 11
INK = 0.1
SCALES = (0.75, 1.5)
# style shifts for domain adaptation (stronger than the corruptions): computed from the clean scenes, not cached
STYLE_SHIFTS = {"inverted": lambda x: 1.0 - x}


def make_scenes(images: torch.Tensor, labels: torch.Tensor, n: int, *, size: int = 64, seed: int = 0,
                max_objects: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes (N, 1, size, size) float in [0, 1] and their label maps (N, size, size) int64 from garments
    ``images`` (M, 1, h, w) in [0, 1] with ``labels`` (M,)."""
    if images.dim() != 4 or images.shape[1] != 1 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"images must be (M, 1, h, w) with M labels, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    x = torch.zeros(n, 1, size, size)
    y = torch.full((n, size, size), BACKGROUND, dtype=torch.long)
    h = images.shape[-1]
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        for _ in range(int(rng.integers(1, max_objects + 1))):
            j = int(rng.integers(len(images)))
            side = min(size, max(8, round(h * rng.uniform(*SCALES))))
            g = F.interpolate(images[j:j + 1], size=(side, side), mode="bilinear", align_corners=False)[0, 0]
            top, left = rng.integers(0, size - side + 1, size=2).tolist()
            ink = g > INK
            patch_x, patch_y = x[i, 0, top:top + side, left:left + side], y[i, top:top + side, left:left + side]
            patch_x[ink] = g[ink]
            patch_y[ink] = int(labels[j])
    return x.clamp_(0, 1), y


class SceneData:
    """Clean source scenes (from the training images), clean and corrupted target scenes (from the test
    images), cached and fingerprinted. Corruptions use the Fashion-MNIST-C code at ``severity``."""

    def __init__(self, data_dir: str | Path | None = None, cache_dir: str | Path | None = None, *,
                 n_train: int = 8000, n_test: int = 1000, size: int = 64, seed: int = 0, severity: int = 5) -> None:
        self.data_dir, self.size, self.seed, self.severity = data_dir, size, seed, severity
        self.n = {"train": n_train, "test": n_test}
        self.cache_dir = Path(cache_dir or default_cache_dir())

    def key(self) -> dict[str, object]:
        return {"fashion_mnist": data_fingerprint(self.data_dir), "scenes_version": SCENES_VERSION,
                "size": self.size, "seed": self.seed, "n": self.n, "severity": self.severity,
                "corruption_code": corruption_code()}

    @property
    def fingerprint(self) -> str:
        return json_fingerprint(self.key())

    def _folder(self) -> Path:
        return self.cache_dir / "fmnist-scenes" / self.fingerprint

    def split(self, domain: str = "clean", part: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """(images, label maps) of ``part`` (train or test) in ``domain``: clean, a corruption (at the severity),
        or a style shift (:data:`STYLE_SHIFTS`, computed from the clean scenes, the UDA targets)."""
        if part not in self.n:
            raise UsageError(f"part must be train or test, got {part!r}")
        if domain in STYLE_SHIFTS:
            x, y = self.split("clean", part)
            return STYLE_SHIFTS[domain](x), y
        if domain != "clean" and domain not in CORRUPTIONS:
            raise UsageError(f"unknown target domain {domain!r}: clean, {', '.join(STYLE_SHIFTS)} or one of "
                             f"{', '.join(CORRUPTIONS)}")
        path = self._folder() / f"{part}-{domain}.pt"
        data = read_checksummed(path)
        blob = None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if blob is None:
            if domain == "clean":
                images, labels = load_fashion_mnist(part, self.data_dir)
                # the seed of the test scenes differs from the training one: no scene layout is shared
                x, y = make_scenes(images, labels, self.n[part], size=self.size,
                                   seed=self.seed * 2 + (part == "test"))
            else:
                x, y = self.split("clean", part)
                x = corrupt(x, domain, self.severity, seed=self.seed)
            blob = {"x": (x * 255).round().to(torch.uint8), "y": y.to(torch.uint8), "key": self.key()}
            buf = io.BytesIO()
            torch.save(blob, buf)
            write_checksummed(path, buf.getvalue(), "scene cache")
        return blob["x"].float() / 255.0, blob["y"].long()

