"""Model specs of the runner and the CLI (``--model``, ``--weights``).

* ``cnn``, ``vit``: the built-in Fashion-MNIST models; their committed checkpoints by default, or a state-dict
  file written by ``entmin train-source --out`` (``weights=``).
* ``timm:<architecture>``, ``torchvision:<architecture>``: any architecture of those libraries (the optional
  ``entmin[vision]`` extra), with weights from a local state-dict file (read with ``weights_only=True``) or,
  on a machine that can reach their hubs, the library's own pretrained weights (``weights="pretrained"``).

The dataset loaders return images in [0, 1]; an external model gets its input normalisation (timm's
``pretrained_cfg`` mean/std, torchvision's ImageNet constants) as a forward pre-hook with non-persistent
buffers, not as a wrapper module, so that parameter and module names stay the library's own (SAR/DeYO's
default frozen top layers are found by name) and the state dict is unchanged.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .checkpoints import checkpoint_metadata, load_checkpoint, load_source_model
from .small import MODEL_NAMES, build_model

__all__ = ["EXTERNAL_LIBRARIES", "IMAGENET_MEAN", "IMAGENET_STD", "add_input_normalization", "load_model",
           "parse_model_spec"]

EXTERNAL_LIBRARIES = ("timm", "torchvision")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``("builtin", "cnn")``, ``("timm", "resnet50")``, ...; a clear error for anything else."""
    if spec in MODEL_NAMES:
        return "builtin", spec
    lib, sep, name = str(spec).partition(":")
    if sep and lib in EXTERNAL_LIBRARIES and name:
        return lib, name
    raise ValueError(f"unknown model {spec!r}: use one of {list(MODEL_NAMES)}, timm:<architecture> or "
                     "torchvision:<architecture>")


def add_input_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Make ``model`` normalise its [0, 1] input: ``x -> (x - mean) / std`` per channel, before its forward."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    if not bool((std_t > 0).all()):
        raise ValueError(f"input std must be > 0, got {tuple(std)}")
    model.register_buffer("entmin_input_mean", mean_t, persistent=False)
    model.register_buffer("entmin_input_std", std_t, persistent=False)

    def normalise(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        return ((x - module.entmin_input_mean.to(x.dtype)) / module.entmin_input_std.to(x.dtype),) + args[1:]

    model.register_forward_pre_hook(normalise)
    return model


def _import(lib: str):
    try:
        return importlib.import_module(lib)
    except ImportError:
        raise ValueError(f"model spec '{lib}:...' needs the {lib} package: pip install 'entmin[vision]' "
                         "(keep the torch build you have: install it first)") from None


def load_model(spec: str, weights: str | Path | None = None, *, num_classes: int | None = None) -> nn.Module:
    """Build the model named by ``spec`` with its weights, in eval mode, on the CPU (see the module doc)."""
    lib, name = parse_model_spec(spec)
    if lib == "builtin":
        if weights is None:
            return load_source_model(name)
        path = Path(weights)
        meta = checkpoint_metadata(path) if path.with_suffix(".json").is_file() else {}
        model = build_model(meta.get("arch", name), meta.get("num_classes", num_classes or 10))
        return load_checkpoint(model, path, expected_sha256=meta.get("sha256")).eval()
    if weights is None:
        raise ValueError(f"model {spec!r} needs weights: a local state-dict file (--weights path.pt), or "
                         "--weights pretrained to let the library fetch its own (needs internet)")
    pretrained = str(weights) == "pretrained"
    module = _import(lib)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    try:
        if lib == "timm":
            model = module.create_model(name, pretrained=pretrained, **kwargs)
        else:
            model = module.models.get_model(name, weights="DEFAULT" if pretrained else None, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        hint = "; on an offline machine pass a local weights file" if pretrained else ""
        raise ValueError(f"cannot build {spec!r}: {e}{hint}") from None
    if not pretrained:
        load_checkpoint(model, weights)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    add_input_normalization(model, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
    return model.eval()
