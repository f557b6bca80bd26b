"""Typed, immutable description of one benchmark experiment; its hash keys the results store.

Every field carries its help text and, where it has them, its choices (field metadata): the command line
builds its options from them and TOML files are checked against them, so the three can never drift.

The hash covers every hyper-parameter and the ``provenance`` of the run: the fingerprint of the data, the
corruption code version and the weights' sha256 (filled in by :func:`~entmin.bench.provenance.resolve`).
Provenance entries equal to the built-in defaults (Debian's Fashion-MNIST, the committed checkpoints, the
current corruption code) are left out of the hash, so stores written before provenance existed keep their keys.
"""
from __future__ import annotations

import math
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..adapt import ADAPTERS
from ..adapt.constants import ADAPTER_DEFAULT_LR
from ..data.corruptions import CORRUPTIONS
from ..data.fingerprint import json_fingerprint
from ..errors import UsageError
from ..models.small import MODEL_NAMES
from ..models.zoo import parse_model_spec
from ..objectives import OBJECTIVES
from .streams import PROTOCOLS

__all__ = ["DATASET_CLASSES", "DEFAULT_LR", "IDX_DATASETS", "PROTOCOLS", "RunConfig", "default_lr", "load_config_file",
           "toml_table"]

# Learning rates for the built-in Fashion-MNIST models at batch 64 (SGD, momentum 0.9), chosen by the sweep in
# BENCHMARKS.md section 5; any other model gets the hosts' ViT-B/16 value (pass lr: Tent's ImageNet ResNet-50
# value is 2.5e-4 at batch 64, and `entmin sweep` finds one for your model).
DEFAULT_LR = {"cnn": 1e-3, "cnn_gn": 1e-3, "vit": 1e-2}   # cnn_gn: the BN CNN's value, not swept
DATASET_CLASSES = {"fmnist": 10, "idx": 0, "cifar10c": 10, "imagenetc": 1000}   # idx: counted from its labels
IDX_DATASETS = ("fmnist", "idx")   # IDX files (Fashion-MNIST's names) corrupted by entmin
SPLITS = ("all", "search", "holdout")


# fields added after entmin 0.1, with their defaults: left out of the hash at those defaults
_ADDED_AFTER_0_1 = {"weights": None, "class_list": None, "num_classes": None, "precision": "fp32",
                    "channels_last": False, "compile": False, "delta": 0.1, "slots": 100, "rounds": 10,
                    "imbalance": 500000.0}


def default_lr(model: str) -> float:
    return DEFAULT_LR.get(model, ADAPTER_DEFAULT_LR)


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, **extra})


@dataclass(frozen=True)
class RunConfig:
    method: str = _opt("tent", "adaptation method", tuple(ADAPTERS))
    objective: str = _opt("em", "objective inside the host ('dem' takes tau/alpha)", tuple(OBJECTIVES))
    objective_options: tuple[tuple[str, Any], ...] = _opt(
        (), "options of a named objective (TOML table; --tau/--alpha on the command line)", cli=False)
    model: str = _opt("cnn", f"built-in model ({', '.join(MODEL_NAMES)}) or timm:<arch> / torchvision:<arch>")
    dataset: str = _opt("fmnist", "fmnist (built-in), idx (your own IDX files: any size and class count), "
                                  "cifar10c or imagenetc (these three with --data-dir)",
                        tuple(DATASET_CLASSES))
    protocol: str = _opt("single", "single: reset before each domain; continual: one stream, no reset; gradual: "
                                   "severities 1-5-1 per corruption; mixed: all domains shuffled together; "
                                   "label-shift: Dirichlet-correlated class order (delta); imbalanced: SAR's online "
                                   "imbalanced label shift (imbalance); long: rounds x continual",
                         PROTOCOLS)
    severity: int = _opt(5, "corruption severity, 1-5 (the clean test set is the domain 'clean')")
    corruptions: tuple[str, ...] = _opt(tuple(CORRUPTIONS), "domains in stream order: corruption names or "
                                        "'clean' (a name may repeat)")
    batch_size: int = _opt(64, "test batch size")
    n_per_domain: int | None = _opt(None, "images per domain (a fixed subset, the same for every seed; "
                                    "default all)")
    optimizer: str = _opt("sgd", "optimizer of the adapted parameters", ("sgd", "adam"))
    lr: float | None = _opt(None, "learning rate (default: per built-in model, 1e-3 otherwise)")
    momentum: float = _opt(0.9, "SGD momentum")
    steps: int = _opt(1, "updates per batch")
    bank_update: str = _opt("all", "which samples update AdaDEM's MEC bank in filtering hosts",
                            ("all", "selected"))
    split: str = _opt("all", "part of each domain: all, search (a fixed 20%, DEM*) or holdout (the other 80%)",
                      SPLITS)
    method_options: tuple[tuple[str, Any], ...] = _opt((), "options of the method (TOML table)", cli=False)
    weights: str | None = _opt(None, "model weights file, or 'pretrained' (timm:/torchvision: models)")
    class_list: str | None = _opt(None, "classes of an image-folder dataset: imagenet (default; folders named by "
                                        "WordNet id), imagenet-r, imagenet-a (200-class head mask) or a file")
    num_classes: int | None = _opt(None, "class count of the model's output (default: the dataset's)")
    precision: str = _opt("fp32", "forward passes in fp32, or under bf16 / fp16 autocast (fp16: for CUDA, with loss "
                                  "scaling); objective and selection stay float32", ("fp32", "bf16", "fp16"))
    channels_last: bool = _opt(False, "run a CNN in channels-last memory format")
    compile: bool = _opt(False, "run the model through torch.compile")
    delta: float = _opt(0.1, "label-shift: Dirichlet concentration (small: long single-class runs; large: i.i.d.)")
    slots: int = _opt(100, "label-shift: time slots per domain")
    rounds: int = _opt(10, "long: passes over the continual sequence")
    imbalance: float = _opt(500000.0, "imbalanced: the current class's probability over any other's (SAR's "
                                      "imbalance ratio; 1 = i.i.d.)")
    provenance: tuple[tuple[str, str], ...] = _opt(
        (), "what the run reads (data fingerprint, weights sha256, corruption code); filled in by resolve()",
        cli=False)

    def __post_init__(self) -> None:
        _check_types(self)

        def bad(name: str, msg: str) -> None:
            raise UsageError(f"invalid config field {name!r}: {msg}")

        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                bad(f.name, f"{getattr(self, f.name)!r} is not one of {list(choices)}")
        if self.severity not in (1, 2, 3, 4, 5):
            bad("severity", f"must be 1 to 5, got {self.severity} (the clean test set is the domain 'clean')")
        if not self.corruptions:
            bad("corruptions", "empty")
        for c in self.corruptions:
            if self.dataset in IDX_DATASETS and c not in CORRUPTIONS and c != "clean":
                bad("corruptions", f"unknown corruption {c!r}; choose from {list(CORRUPTIONS)} or 'clean'")
        if self.batch_size < 1:
            bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.n_per_domain is not None and self.n_per_domain < 1:
            bad("n_per_domain", f"must be >= 1, got {self.n_per_domain}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            bad("lr", f"must be a finite number > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            bad("momentum", f"must lie in [0, 1), got {self.momentum}")
        if self.steps < 1:
            bad("steps", f"must be >= 1, got {self.steps}")
        if not self.delta > 0:
            bad("delta", f"must be > 0, got {self.delta}")
        if not self.imbalance >= 1:
            bad("imbalance", f"must be >= 1, got {self.imbalance}")
        if self.slots < 1 or self.rounds < 1:
            bad("slots" if self.slots < 1 else "rounds", "must be >= 1")
        try:
            kind, _ = parse_model_spec(self.model)
        except ValueError as e:
            bad("model", str(e))
        if kind != "builtin" and self.weights is None:
            bad("weights", f"model {self.model!r} needs weights: a local state-dict file or 'pretrained'")
        if self.num_classes is not None and self.num_classes < 2:
            bad("num_classes", f"must be >= 2, got {self.num_classes}")
        if self.class_list is not None and self.dataset != "imagenetc":
            bad("class_list", "applies to the image-folder dataset imagenetc only")
        if self.weights == "pretrained" and kind == "builtin":
            bad("weights", "'pretrained' is for timm:/torchvision: models; built-in models use their committed "
                           "weights or a file")

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.model)

    def to_dict(self) -> dict[str, Any]:
        """The dictionary the hash is computed from (and the store shows)."""
        from .provenance import significant_provenance

        d = asdict(self)
        d["corruptions"] = list(self.corruptions)
        d["objective_options"] = dict(self.objective_options)
        d["method_options"] = dict(self.method_options)
        d["lr"] = self.effective_lr
        # fields added after entmin 0.1 are absent when unset, so that the hashes of its stores stay what they were
        for k, default in _ADDED_AFTER_0_1.items():
            if d[k] == default:
                del d[k]
        prov = significant_provenance(self)
        if prov:
            d["provenance"] = prov
        else:
            del d["provenance"]
        return d

    def to_fields(self) -> dict[str, Any]:
        """Every field as plain data (lists and tables for tuples): ``RunConfig.from_dict`` rebuilds this exact
        config (unlike :meth:`to_dict`, which resolves the default lr and keeps only significant provenance)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["corruptions"] = list(self.corruptions)
        for k in ("objective_options", "method_options", "provenance"):
            d[k] = dict(d[k])
        return d

    @property
    def hash(self) -> str:
        return json_fingerprint(self.to_dict())

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
            raise UsageError(f"unknown config field(s) {sorted(unknown)}; valid fields: {sorted(known)}")
        d = dict(d)
        for k in ("objective_options", "method_options", "provenance"):
            if k in d and isinstance(d[k], dict):
                d[k] = tuple(sorted(d[k].items()))
        if isinstance(d.get("corruptions"), list):
            d["corruptions"] = tuple(d["corruptions"])
        return cls(**d)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(value) == len(args) and all(_type_ok(v, a) for v, a in zip(value, args))
    return isinstance(value, tp)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _describe(args[0]) + " (or unset)"
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        return "a table" if typing.get_origin(inner) is tuple else f"a list of {_describe(inner)}s"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _check_types(cfg: Any) -> None:
    """Refuse a value of the wrong type with a message naming the field (TOML `lr = "0.1"`, `batch_size = 64.5`,
    `corruptions = "fog"`), and store integral floats as floats so that `lr = 1` and `lr = 1.0` hash alike."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        value, tp = getattr(cfg, f.name), hints[f.name]
        if not _type_ok(value, tp):
            shown = f"the string {value!r}" if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
            hint = f" (write {f.name} = [{value!r}])" if isinstance(value, str) and typing.get_origin(tp) is tuple \
                else ""
            raise UsageError(f"invalid config field {f.name!r}: must be {_describe(tp)}, got {shown}{hint}")
        if isinstance(value, int) and not isinstance(value, bool) and float in typing.get_args(tp) + (tp,) \
                and int not in typing.get_args(tp) + (tp,):
            object.__setattr__(cfg, f.name, float(value))


def toml_table(path: str | Path) -> dict[str, Any]:
    """Read a TOML file safely (no code execution) into a dict; a clear error naming the file otherwise."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read config {path}: {e}") from None


def load_config_file(path: str | Path) -> RunConfig:
    """A :class:`RunConfig` from a TOML experiment description (unknown fields and wrong types refused)."""
    return RunConfig.from_dict(toml_table(path))
