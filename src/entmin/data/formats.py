"""Other on-disk benchmark formats, so the same runner serves GPU users on the paper's data.

* ImageNet-C: ``<root>/<corruption>/<severity>/<class>/*.JPEG`` (classes sorted by folder name, the
  torchvision ImageFolder convention); images are centre-cropped to ``crop`` and returned as float [0, 1]
  RGB (normalisation belongs to the model, cf. SAR#5).
* CIFAR-10-C: ``<root>/<corruption>.npy`` (50 000 x 32 x 32 x 3 uint8, severities 1-5 stacked in blocks of
  10 000) and ``<root>/labels.npy``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "load_cifar10c", "load_imagenetc"]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def load_cifar10c(root: str | Path, corruption: str, severity: int, n: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10-C folder not found: {root}")
    f, lf = root / f"{corruption}.npy", root / "labels.npy"
    for p in (f, lf):
        if not p.is_file():
            raise FileNotFoundError(f"CIFAR-10-C file missing: {p}")
    if severity not in range(1, 6):
        raise ValueError(f"severity must be in 1..5, got {severity}")
    try:
        arr = np.load(f, mmap_mode="r", allow_pickle=False)
        labels = np.load(lf, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"corrupt CIFAR-10-C file in {root}: {e}") from None
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] % 5 or labels.shape[0] != arr.shape[0]:
        raise ValueError(f"{f}: expected (5k, H, W, 3) images with as many labels, got {arr.shape} and "
                         f"{labels.shape}")
    per = arr.shape[0] // 5
    sl = slice((severity - 1) * per, (severity - 1) * per + (n or per))
    x = torch.from_numpy(np.array(arr[sl])).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(labels[sl].astype(np.int64))


def load_imagenetc(root: str | Path, corruption: str, severity: int, n: int | None = None, crop: int = 224,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Load (a seeded random subset of ``n``) images of one ImageNet-C split into memory."""
    from PIL import Image

    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageNet-C split not found: {folder} (expected <root>/<corruption>/<severity>/"
                                "<class>/*.JPEG)")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{folder} holds no class folders")
    files = [(p, i) for i, c in enumerate(classes) for p in sorted((folder / c).iterdir())
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise ValueError(f"{folder} holds no images")
    if n is not None and n < len(files):
        idx = np.random.default_rng(seed).choice(len(files), size=n, replace=False)
        files = [files[i] for i in sorted(idx)]
    xs, ys = [], []
    for p, label in files:
        try:
            img = Image.open(p).convert("RGB")
        except OSError as e:
            raise ValueError(f"cannot read image {p}: {e}") from None
        w, h = img.size
        s = min(w, h)
        if s > crop:  # centre crop (ImageNet-C images are already 224 x 224)
            left, top = (w - crop) // 2, (h - crop) // 2
            img = img.crop((left, top, left + crop, top + crop))
        xs.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1))
        ys.append(label)
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"{folder}: images of different sizes {sorted(shapes)[:3]}; resize them to {crop}")
    return torch.stack(xs).float() / 255.0, torch.tensor(ys, dtype=torch.int64)
