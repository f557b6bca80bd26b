"""Fashion-MNIST-C: the corrupted test splits, built once and cached outside git, keyed by what they are
made of.

Layout: ``<cache>/fmnist-c/<data fingerprint[:16]>-<corruption code>-seed<seed>/<corruption>-<severity>.npy``
(uint8, (N, 32, 32)), each with a ``.sha256`` sidecar holding its checksum. The folder name carries the
fingerprint of the clean test images and labels the splits were made from and the corruption code version
(:func:`~entmin.data.corruptions.corruption_code`), so a cache can never serve images of other data (a test
set in another order, a subset) or of other corruption code: those get their own folder. A split is rebuilt
when its file is missing or its checksum does not match (a truncated write or a corrupted disk never yields
silently wrong data), and refused when its image count differs from the labels it is paired with.

One sidecar per split (not one shared manifest) lets several processes build or read the cache at once
without a lock: every write is a whole-file atomic replace, so no writer can lose another's entry.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..utils import ensure_dir
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_code
from .fashion_mnist import data_fingerprint, load_fashion_mnist
from .fingerprint import file_sha256, write_checksummed

__all__ = ["CACHE_ENV", "FMNISTC", "default_cache_dir"]

CACHE_ENV = "ENTMIN_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "entmin")


class FMNISTC:
    """Corrupted Fashion-MNIST test splits (and the clean split, corruption ``clean``) as float tensors in
    [0, 1], with the labels of the clean test set they were made from."""

    def __init__(self, data_dir: str | Path | None = None, cache_dir: str | Path | None = None, seed: int = 0,
                 name: str = "fmnist") -> None:
        self.data_dir, self.name = data_dir, name
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self._clean: tuple[torch.Tensor, torch.Tensor] | None = None
        self._root: Path | None = None

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the clean test images and labels (the data every split is made from)."""
        return data_fingerprint(self.data_dir, splits=("test",))

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = self.cache_dir / f"{self.name}-c" / f"{self.fingerprint[:16]}-{corruption_code()}-seed{self.seed}"
        return self._root

    def checksum_path(self, corruption: str, severity: int) -> Path:
        return self.path(corruption, severity).with_suffix(".sha256")

    def clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._clean is None:
            self._clean = load_fashion_mnist("test", self.data_dir)
        return self._clean

    def labels(self) -> torch.Tensor:
        return self.clean()[1]

    def path(self, corruption: str, severity: int) -> Path:
        return self.root / f"{corruption}-{severity}.npy"

    def is_valid(self, corruption: str, severity: int) -> bool:
        p, side = self.path(corruption, severity), self.checksum_path(corruption, severity)
        return p.is_file() and side.is_file() and side.read_text().strip() == file_sha256(p)

    def build(self, corruption: str, severity: int, chunk: int = 2000) -> Path:
        x, _ = self.clean()
        parts = [corrupt(x[i:i + chunk], corruption, severity, seed=self.seed * 1_000_003 + i // chunk)
                 for i in range(0, len(x), chunk)]
        arr = np.uint8(np.round(torch.cat(parts)[:, 0].numpy() * 255))
        buf = io.BytesIO()
        np.save(buf, arr)
        data = buf.getvalue()
        p = self.path(corruption, severity)
        ensure_dir(self.root, "corruption cache folder (set --cache-dir or $ENTMIN_CACHE)")
        write_checksummed(p, data, "cached split")
        return p

    def build_all(self, corruptions=None, severities=SEVERITIES,
                  progress: Callable[[str, int], None] | None = None, workers: int = 1) -> None:
        """Build every missing or damaged split; ``workers > 1`` builds splits in parallel processes
        (the corruptions are NumPy code that uses one core each). Workers die with this process."""
        todo = [(c, s) for c in corruptions or CORRUPTIONS for s in severities]
        for c, s in todo:
            _check_split(c, s)
        missing = [(c, s) for c, s in todo if not self.is_valid(c, s)]
        for c, s in todo:
            if (c, s) not in missing and progress:
                progress(c, s)
        if workers <= 1 or len(missing) <= 1:
            for c, s in missing:
                self.build(c, s)
                if progress:
                    progress(c, s)
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed

        self.clean()  # fail here, with the install hint, rather than in every worker
        ensure_dir(self.root, "corruption cache folder (set --cache-dir or $ENTMIN_CACHE)")
        with ProcessPoolExecutor(max_workers=min(workers, len(missing)), initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_build_one, self.data_dir, self.cache_dir, self.seed, c, s): (c, s)
                       for c, s in missing}
            for fut in as_completed(futures):
                fut.result()
                if progress:
                    progress(*futures[fut])

    def load(self, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (N, 1, 32, 32) float32 in [0, 1], labels). Corruption ``clean`` = the clean test set."""
        if corruption == "clean":
            return self.clean()
        _check_split(corruption, severity)
        if not self.is_valid(corruption, severity):
            self.build(corruption, severity)
        p = self.path(corruption, severity)
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read the cached split {p}: {e}") from None
        labels = self.labels()
        if arr.ndim != 3 or arr.shape[0] != len(labels):
            raise DataError(f"cached split {p} holds {arr.shape[0]} images but the test set at "
                            f"{self.data_dir or 'the default location'} has {len(labels)} labels; delete the file")
        return torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(1), labels


def _check_split(corruption: str, severity: int) -> None:
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; choose one of {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be in 1..5, got {severity}")


def _worker_init(parent: int) -> None:
    """Make a build worker die with the process that started it (after a ``kill -9`` of ``entmin corrupt`` it
    would otherwise finish, and write, its current split): the kernel's parent-death signal on Linux, and a
    watchdog thread everywhere."""
    torch.set_num_threads(1)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _build_one(data_dir, cache_dir: Path, seed: int, corruption: str, severity: int) -> None:
    """Process-pool entry point: build one split (one intra-op thread; the pool supplies parallelism)."""
    FMNISTC(data_dir, cache_dir, seed).build(corruption, severity)
