"""Fashion-MNIST-C: the corrupted test splits, built once and cached outside git with checksums.

Layout: ``<cache>/fmnist-c/v<version>-seed<seed>/<corruption>-<severity>.npy`` (uint8, (N, 32, 32)), each
with a ``.sha256`` sidecar holding its checksum. A split is rebuilt when its file is missing or its checksum
does not match (a truncated write or a corrupted disk never yields silently wrong data). One sidecar per
split (not one shared manifest) lets several processes build or read the cache at once without a lock:
every write is a whole-file atomic replace, so no writer can lose another's entry.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .fashion_mnist import load_fashion_mnist

__all__ = ["CACHE_VERSION", "FMNISTC", "default_cache_dir"]

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("ENTMIN_CACHE", Path.home() / ".cache" / "entmin"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Whole-file write through a temporary file and ``os.replace``: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class FMNISTC:
    """Corrupted Fashion-MNIST test splits (and the clean split, severity 0) as float tensors in [0, 1]."""

    def __init__(self, data_dir: str | Path | None = None, cache_dir: str | Path | None = None, seed: int = 0) -> None:
        self.data_dir = data_dir
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self.root = self.cache_dir / "fmnist-c" / f"v{CACHE_VERSION}-seed{self.seed}"
        self._clean: tuple[torch.Tensor, torch.Tensor] | None = None

    def checksum_path(self, corruption: str, severity: int) -> Path:
        return self.path(corruption, severity).with_suffix(".sha256")

    def _recorded_checksum(self, corruption: str, severity: int) -> str | None:
        side = self.checksum_path(corruption, severity)
        if side.is_file():
            return side.read_text().strip()
        legacy = self.root / "manifest.json"  # caches written before the sidecars (entmin 0.1.0 dev)
        if legacy.is_file():
            try:
                return json.loads(legacy.read_text()).get(self.path(corruption, severity).name)
            except json.JSONDecodeError:
                return None
        return None

    def clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._clean is None:
            self._clean = load_fashion_mnist("test", self.data_dir)
        return self._clean

    def labels(self) -> torch.Tensor:
        return self.clean()[1]

    def path(self, corruption: str, severity: int) -> Path:
        return self.root / f"{corruption}-{severity}.npy"

    def is_valid(self, corruption: str, severity: int) -> bool:
        p = self.path(corruption, severity)
        return p.is_file() and self._recorded_checksum(corruption, severity) == _sha256(p)

    def build(self, corruption: str, severity: int, chunk: int = 2000) -> Path:
        x, _ = self.clean()
        parts = [corrupt(x[i:i + chunk], corruption, severity, seed=self.seed * 1_000_003 + i // chunk)
                 for i in range(0, len(x), chunk)]
        arr = np.uint8(np.round(torch.cat(parts)[:, 0].numpy() * 255))
        buf = io.BytesIO()
        np.save(buf, arr)
        data = buf.getvalue()
        p = self.path(corruption, severity)
        _atomic_write(p, data)
        _atomic_write(self.checksum_path(corruption, severity), (hashlib.sha256(data).hexdigest() + "\n").encode())
        return p

    def build_all(self, corruptions=None, severities=SEVERITIES,
                  progress: Callable[[str, int], None] | None = None, workers: int = 1) -> None:
        """Build every missing or damaged split; ``workers > 1`` builds splits in parallel processes
        (the corruptions are NumPy code that uses one core each)."""
        todo = [(c, s) for c in corruptions or CORRUPTIONS for s in severities]
        missing = [(c, s) for c, s in todo if not self.is_valid(c, s)]
        for c, s in todo:
            if (c, s) not in missing and progress:
                progress(c, s)
        if workers <= 1:
            for c, s in missing:
                self.build(c, s)
                if progress:
                    progress(c, s)
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed

        self.clean()  # fail here, with the install hint, rather than in every worker
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_build_one, self.data_dir, self.cache_dir, self.seed, c, s): (c, s)
                       for c, s in missing}
            for fut in as_completed(futures):
                fut.result()
                if progress:
                    progress(*futures[fut])

    def load(self, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (N, 1, 32, 32) float32 in [0, 1], labels). Severity 0 or corruption 'clean' = clean test set."""
        if corruption == "clean" or severity == 0:
            return self.clean()
        if corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {corruption!r}; choose one of {list(CORRUPTIONS)}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be in 1..5, got {severity}")
        if not self.is_valid(corruption, severity):
            self.build(corruption, severity)
        arr = np.load(self.path(corruption, severity), allow_pickle=False)
        return torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(1), self.labels()


def _build_one(data_dir, cache_dir: Path, seed: int, corruption: str, severity: int) -> None:
    """Process-pool entry point: build one split with one intra-op thread (the pool supplies parallelism)."""
    torch.set_num_threads(1)
    FMNISTC(data_dir, cache_dir, seed).build(corruption, severity)
