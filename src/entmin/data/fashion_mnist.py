"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (MIT licence, Zalando SE).

Images are returned as float32 tensors in [0, 1] of shape (N, 1, 32, 32): the 28 x 28 originals are
zero-padded by 2 pixels so that the 32-pixel CIFAR-10-C corruption constants apply unchanged.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .fingerprint import array_fingerprint
from .idx import read_idx

__all__ = ["DEFAULT_DIRS", "FMNIST_CLASSES", "data_fingerprint", "find_data_dir", "load_fashion_mnist", "pad_to_32"]

FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")
ENV_VAR = "ENTMIN_FASHION_MNIST_DIR"
DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist",)
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
INSTALL_HINT = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
                f"--data-dir / ${ENV_VAR} at a folder holding the four Fashion-MNIST IDX files "
                "(train-images-idx3-ubyte[.gz], ...)")


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """The first folder among --data-dir, $ENTMIN_FASHION_MNIST_DIR and Debian's location with all files."""
    candidates = [Path(data_dir)] if data_dir else []
    if not data_dir and os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    if not data_dir:
        candidates += [Path(d) for d in DEFAULT_DIRS]
    for folder in candidates:
        if all(_find_file(folder, s) for pair in _FILES.values() for s in pair):
            return folder
    if data_dir:   # the user's own folder: say what is missing there, not how to install Fashion-MNIST
        missing = [s for pair in _FILES.values() for s in pair if not _find_file(Path(data_dir), s)]
        raise FileNotFoundError(f"no IDX dataset in {data_dir}: missing {', '.join(missing)} (.gz or not); "
                                "Fashion-MNIST's file names are expected")
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"Fashion-MNIST not found (looked in: {looked}); {INSTALL_HINT}")


def pad_to_32(images: np.ndarray) -> np.ndarray:
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))


def load_fashion_mnist(split: str = "test", data_dir: str | Path | None = None, *, as_uint8: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels): images (N, 1, 32, 32) float32 in [0, 1] (or uint8 (N, 32, 32)), labels int64.

    Decoded splits are memoised per process (keyed by folder and file modification times); treat the
    returned tensors as read-only."""
    images, labels = _raw(split, data_dir)
    images = pad_to_32(images)
    y = torch.from_numpy(labels.astype(np.int64))
    if as_uint8:
        return torch.from_numpy(images.copy()), y
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1), y


def data_fingerprint(data_dir: str | Path | None = None, splits: tuple[str, ...] = ("test", "train")) -> str:
    """sha256 of the decoded image and label arrays of ``splits`` (the identity of the data, whatever the
    folder, compression or file names): what a cached corrupted split and a stored result are keyed by.
    Memoised with the decoded arrays (hashing the 70,000 images takes about 0.1 s)."""
    folder = find_data_dir(data_dir)
    stamps = tuple(_find_file(folder, s).stat().st_mtime_ns for sp in splits for s in _FILES[sp])
    return _fingerprint(str(folder), tuple(splits), stamps)


@functools.lru_cache(maxsize=8)
def _fingerprint(folder_s: str, splits: tuple[str, ...], stamps: tuple) -> str:
    return array_fingerprint(*(a for s in splits for a in _raw(s, folder_s)))


def _raw(split: str, data_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_data_dir(data_dir)
    stamp = tuple(_find_file(folder, s).stat().st_mtime_ns for s in _FILES[split])
    return _load_cached(str(folder), split, stamp)


@functools.lru_cache(maxsize=4)
def _load_cached(folder_s: str, split: str, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(folder_s)
    img_stem, lab_stem = _FILES[split]
    images = read_idx(_find_file(folder, img_stem))
    labels = read_idx(_find_file(folder, lab_stem))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: inconsistent Fashion-MNIST {split} files: images {images.shape}, "
                        f"labels {labels.shape}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{folder}: Fashion-MNIST labels must lie in 0..9, found {labels.max()}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels
