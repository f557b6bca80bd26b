"""Typed, immutable description of one benchmark experiment; its hash keys the results store."""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..adapt import ADAPTERS
from ..data.corruptions import CORRUPTIONS
from ..models.zoo import parse_model_spec
from ..objectives import OBJECTIVES

__all__ = ["DATASET_CLASSES", "DEFAULT_LR", "PROTOCOLS", "RunConfig", "load_config_file"]

PROTOCOLS = ("single", "continual")
# Learning rates for the built-in Fashion-MNIST models at batch 64 (SGD, momentum 0.9); see BENCHMARKS.md
# for the sweep that chose them. Any other model defaults to 1e-3 (the hosts' ImageNet value for a ViT-B/16);
# pass lr for others (Tent's ImageNet ResNet-50 value is 2.5e-4 at batch 64).
DEFAULT_LR = {"cnn": 1e-3, "vit": 1e-2}
DATASET_CLASSES = {"fmnist": 10, "cifar10c": 10, "imagenetc": 1000}


@dataclass(frozen=True)
class RunConfig:
    method: str = "tent"
    objective: str = "em"
    objective_options: tuple[tuple[str, Any], ...] = ()
    model: str = "cnn"
    dataset: str = "fmnist"
    protocol: str = "single"
    severity: int = 5
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    batch_size: int = 64
    n_per_domain: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    steps: int = 1
    bank_update: str = "all"
    split: str = "all"  # "search": a fixed 20% of each domain (DEM* search); "holdout": the other 80%
    method_options: tuple[tuple[str, Any], ...] = field(default=())
    weights: str | None = None  # model weights file (or "pretrained"); None: the built-in checkpoint

    def __post_init__(self) -> None:
        def bad(name: str, msg: str) -> None:
            raise ValueError(f"invalid config field {name!r}: {msg}")

        if self.method not in ADAPTERS:
            bad("method", f"unknown method {self.method!r}; choose one of {sorted(ADAPTERS)}")
        if self.objective not in OBJECTIVES:
            bad("objective", f"unknown objective {self.objective!r}; choose one of {sorted(OBJECTIVES)}")
        if self.protocol not in PROTOCOLS:
            bad("protocol", f"{self.protocol!r} is not one of {PROTOCOLS}")
        if self.severity not in (0, 1, 2, 3, 4, 5):
            bad("severity", f"must be 0 (clean) to 5, got {self.severity}")
        for c in self.corruptions:
            if self.dataset == "fmnist" and c not in CORRUPTIONS and c != "clean":
                bad("corruptions", f"unknown corruption {c!r}")
        if not self.corruptions:
            bad("corruptions", "empty")
        if self.batch_size < 1:
            bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.n_per_domain is not None and self.n_per_domain < 1:
            bad("n_per_domain", f"must be >= 1, got {self.n_per_domain}")
        if self.lr is not None and not self.lr > 0:
            bad("lr", f"must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            bad("optimizer", f"must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.steps < 1:
            bad("steps", f"must be >= 1, got {self.steps}")
        if self.bank_update not in ("all", "selected"):
            bad("bank_update", f"must be 'all' or 'selected', got {self.bank_update!r}")
        if self.split not in ("all", "search", "holdout"):
            bad("split", f"must be 'all', 'search' or 'holdout', got {self.split!r}")
        if self.dataset not in DATASET_CLASSES:
            bad("dataset", f"must be one of {sorted(DATASET_CLASSES)}, got {self.dataset!r}")
        try:
            kind, _ = parse_model_spec(self.model)
        except ValueError as e:
            bad("model", str(e))
        if kind != "builtin" and self.weights is None:
            bad("weights", f"model {self.model!r} needs weights: a local state-dict file or 'pretrained'")

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 1e-3)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["corruptions"] = list(self.corruptions)
        d["objective_options"] = dict(self.objective_options)
        d["method_options"] = dict(self.method_options)
        d["lr"] = self.effective_lr
        if d["weights"] is None:  # absent, so that the hashes of built-in-model runs stay what they were
            del d["weights"]
        return d

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        obj = self.objective
        if self.objective_options:
            obj += "(" + ",".join(f"{k}={v}" for k, v in self.objective_options) + ")"
        return f"{self.method}+{obj}" if self.method not in ("source", "bn") else self.method

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {sorted(known)}")
        d = dict(d)
        for k in ("objective_options", "method_options"):
            if k in d and isinstance(d[k], dict):
                d[k] = tuple(sorted(d[k].items()))
        if "corruptions" in d:
            d["corruptions"] = tuple(d["corruptions"])
        return cls(**d)


def load_config_file(path: str | Path) -> RunConfig:
    """Read a TOML experiment description safely (no code execution)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read config {path}: {e}") from None
    return RunConfig.from_dict(data)
