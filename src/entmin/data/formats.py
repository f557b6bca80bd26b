"""Other on-disk benchmark formats, so the same runner serves GPU users on the paper's data.

* ImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, labels by WordNet id (:mod:`.imagefolder`);
  images centre-cropped to ``crop``, float [0, 1] RGB (normalisation belongs to the model, cf. SAR#5).
* CIFAR-10-C: ``<root>/<corruption>.npy`` (50 000 x 32 x 32 x 3 uint8, severities 1-5 stacked in blocks of
  10 000) and ``<root>/labels.npy``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["load_cifar10c", "load_imagenetc"]


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
                   seed: int = 0, class_list: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A (seeded random subset of ``n``) ImageNet-C split decoded into memory as float [0, 1] images; labels
    from the class folders' WordNet ids (see :mod:`entmin.data.imagefolder`, which the benchmark runner uses to
    stream a split without holding it in memory)."""
    from .imagefolder import FolderDomain
    from .imagefolder import class_list as make_class_list

    d = FolderDomain(Path(root) / corruption / str(severity), make_class_list(class_list), crop=crop, workers=0)
    idx = torch.arange(len(d))
    if n is not None and n < len(d):
        idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(d), size=n, replace=False)))
    return d.images(idx).float() / 255.0, d.labels[idx]
