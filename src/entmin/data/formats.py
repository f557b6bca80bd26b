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

__all__ = ["Cifar10CDomain", "load_cifar10c", "load_imagenetc"]


class Cifar10CDomain:
    """One CIFAR-10-C split read through a memory map: a batch reads only its own rows and stays uint8 until the
    runner makes it float on the device, so memory does not grow with the split (a file holds all five
    severities, 50,000 images) and nothing is decoded twice. Same interface as the image-folder domains."""

    def __init__(self, root: str | Path, corruption: str, severity: int) -> None:
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
            labels = np.load(lf, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"corrupt CIFAR-10-C file in {root}: {e}") from None
        if (arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] % 5 or labels.shape[0] != arr.shape[0]
                or arr.dtype != np.uint8):
            raise ValueError(f"{f}: expected (5k, H, W, 3) uint8 images with as many labels, got {arr.shape} "
                             f"{arr.dtype} and {labels.shape}")
        per = arr.shape[0] // 5
        self._rows = arr[(severity - 1) * per:severity * per]  # still a memory map: nothing read yet
        self.labels = torch.from_numpy(np.array(labels[(severity - 1) * per:severity * per], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) images of the given positions (only these rows are read from disk)."""
        rows = self._rows[np.asarray(idx, dtype=np.int64)]
        return torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous()

    def batches(self, index_batches):
        return (self.images(idx) for idx in index_batches)


def load_cifar10c(root: str | Path, corruption: str, severity: int, n: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a CIFAR-10-C split in memory as float [0, 1] (the runner streams
    :class:`Cifar10CDomain` instead)."""
    d = Cifar10CDomain(root, corruption, severity)
    idx = torch.arange(min(n or len(d), len(d)))
    return d.images(idx).float() / 255.0, d.labels[idx]


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
