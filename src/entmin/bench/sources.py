"""Where a benchmark's images come from: the configured dataset's domains (Fashion-MNIST-C or your own IDX data,
CIFAR-10-C, image folders), their sizes and labels, the data fingerprint, and clean batches for EATA's Fisher."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.cache import FMNISTC
from ..data.fashion_mnist import data_fingerprint, load_fashion_mnist
from ..data.fingerprint import folder_fingerprint
from ..data.formats import Cifar10CDomain
from ..data.imagefolder import FolderDomain
from ..data.imagefolder import class_list as imagenet_class_list
from ..errors import DataError, UsageError
from .config import DATASET_CLASSES, IDX_DATASETS, RunConfig
from .streams import Domain

__all__ = ["DataSource", "TensorDomain"]


class TensorDomain:
    """A domain held in memory (Fashion-MNIST-C and other IDX data): images (N, C, H, W) and labels."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise DataError(f"{len(x)} images but {len(y)} labels")
        self.x, self.labels = x, y

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[idx]

    def batches(self, index_batches):
        return (self.x[idx] for idx in index_batches)


class DataSource:
    """The domains of the configured dataset, and what the data is (fingerprint, classes)."""

    def __init__(self, dataset: str = "fmnist", data_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, class_list: str | None = None) -> None:
        self.dataset, self.data_dir = dataset, data_dir
        if dataset == "idx" and not data_dir:
            raise UsageError("dataset 'idx' needs --data-dir: the folder of your IDX files")
        if dataset in IDX_DATASETS:
            self.fmnistc = FMNISTC(data_dir, cache_dir, name=dataset)
        elif dataset not in DATASET_CLASSES:
            raise UsageError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_CLASSES)}")
        elif not data_dir:
            raise UsageError(f"dataset {dataset!r} needs --data-dir pointing at its root folder")
        if class_list is not None and dataset != "imagenetc":
            raise UsageError("class_list applies to image-folder datasets (imagenetc) only")
        self.classes = imagenet_class_list(class_list) if dataset == "imagenetc" else None
        self._sizes: dict[Domain, int] = {}
        self._folders: dict[Domain, FolderDomain] = {}  # file indexes (cheap to keep; scanned once)

    @property
    def num_classes(self) -> int:
        if self.dataset == "idx":
            return int(self.fmnistc.labels().max()) + 1
        return len(self.classes) if self.classes is not None else DATASET_CLASSES[self.dataset]

    @property
    def head(self) -> tuple[int, ...] | None:
        """Columns of a 1,000-way head to keep (ImageNet-R/-A and other ImageNet subsets), or None."""
        return self.classes.head if self.classes is not None else None

    def domain(self, corruption: str, severity: int):
        """The images and labels of one domain: in memory, or an index of files decoded on demand."""
        if self.dataset in IDX_DATASETS:
            d = TensorDomain(*self.fmnistc.load(corruption, severity))
        elif self.dataset == "cifar10c":
            d = Cifar10CDomain(self.data_dir, corruption, severity)
        else:
            if (corruption, severity) not in self._folders:
                self._folders[(corruption, severity)] = FolderDomain(
                    Path(self.data_dir) / corruption / str(severity), self.classes)
            d = self._folders[(corruption, severity)]
        self._sizes[(corruption, severity)] = len(d)
        return d

    def load(self, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(float [0, 1] images, labels) of a whole domain in memory (small data; streams use :meth:`domain`,
        whose file-backed domains stay uint8 until the batch reaches the device)."""
        d = self.domain(corruption, severity)
        if isinstance(d, TensorDomain):
            return d.x, d.labels
        return d.images(torch.arange(len(d))).float().div_(255.0), d.labels

    def labels(self, domain: Domain) -> torch.Tensor:
        """Labels of a domain (for streams whose order depends on them)."""
        if self.dataset in IDX_DATASETS:
            return self.fmnistc.labels()
        return self.domain(*domain).labels

    def size(self, domain: Domain) -> int:
        """Number of images of a domain (the Fashion-MNIST test set size without reading a split)."""
        if domain not in self._sizes:
            if self.dataset in IDX_DATASETS:
                self._sizes[domain] = len(self.fmnistc.labels())
            else:
                self.domain(*domain)
        return self._sizes[domain]

    def fingerprint(self, cfg: RunConfig) -> str:
        """Identity of the data ``cfg`` reads: the decoded Fashion-MNIST arrays, or the files (path, size,
        modification time; labels by content) of the CIFAR-10-C / ImageNet-C domains it visits."""
        if self.dataset in IDX_DATASETS:
            return data_fingerprint(self.data_dir)
        root = Path(self.data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.dataset} folder not found: {root}")
        if self.dataset == "cifar10c":
            files = [root / f"{c}.npy" for c in sorted(set(cfg.corruptions))] + [root / "labels.npy"]
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"CIFAR-10-C file missing: {missing[0]}")
            return folder_fingerprint(root, files, content=[root / "labels.npy"])
        files = [Path(f) for c in sorted(set(cfg.corruptions)) for f in self.domain(c, cfg.severity).files]
        return folder_fingerprint(root, files)

    def clean_batches(self, n: int = 2000, batch_size: int = 64, seed: int = 0) -> list[torch.Tensor]:
        """Clean in-distribution batches (EATA's Fisher): Fashion-MNIST *training* images."""
        if self.dataset not in IDX_DATASETS:
            raise UsageError("EATA needs clean in-distribution samples; only IDX datasets provide them "
                             "(their training images) in the runner (use the Python API with your own fisher_loader)")
        x, _ = load_fashion_mnist("train", self.data_dir)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return [x[idx[i:i + batch_size]] for i in range(0, len(idx), batch_size)]
