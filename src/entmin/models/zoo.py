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
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError, UsageError
from .checkpoints import checkpoint_metadata, load_checkpoint, load_source_model, sha256_of
from .small import MODEL_NAMES, build_model

__all__ = ["EXTERNAL_LIBRARIES", "IMAGENET_MEAN", "IMAGENET_STD", "add_input_normalization",
           "import_vision_library", "load_model", "parse_model_spec", "restrict_head", "weights_fingerprint"]

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
    raise UsageError(f"unknown model {spec!r}: use one of {list(MODEL_NAMES)}, timm:<architecture> or "
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


def restrict_head(model: nn.Module, columns: Sequence[int]) -> nn.Module:
    """Keep only ``columns`` of the model's 1,000 logits (the ImageNet-R/-A output mask), as a forward hook so
    that parameter names stay the library's."""
    idx = torch.as_tensor(list(columns), dtype=torch.long)

    def select(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        if out.shape[-1] <= int(idx.max()):
            raise UsageError(f"the model has {out.shape[-1]} outputs; the class list needs a 1,000-way ImageNet head")
        return out.index_select(-1, idx.to(out.device))

    model.register_forward_hook(select)
    return model


SHIM_ENV = "ENTMIN_NO_TORCHVISION_SHIM"


def import_vision_library(lib: str):
    """Import ``timm``, ``torchvision`` or ``open_clip`` (TPT's CLIP models), or fail with one line.

    PyPI's torchvision is a CUDA build: beside a CPU torch its import stops in
    ``torchvision._meta_registrations`` ("operator torchvision::nms does not exist"), and timm and open_clip
    import torchvision. Only then, and unless $ENTMIN_NO_TORCHVISION_SHIM is set, the import is retried with that
    private module replaced by an empty stub (shared/reference/offline_data.md section 4): models, transforms
    and timm work; torchvision's C++ detection ops (nms, roi_align, deform_conv) do not, and entmin uses none.
    """
    try:
        return importlib.import_module(lib)
    except ImportError as e:
        who = "TPT's OpenCLIP adapter" if lib == "open_clip" else f"model spec '{lib}:...'"
        raise UsageError(f"{who} needs the {lib} package ({e}); install the vision extra "
                         "(README 'Optional extras': `bash scripts/setup.sh --vision`)") from None
    except RuntimeError as e:
        if "torchvision::" not in str(e) or os.environ.get(SHIM_ENV):
            raise DataError(f"the installed {lib} cannot be imported here ({type(e).__name__}: "
                            f"{str(e).splitlines()[0]}); see README 'Optional extras' for the CPU install") from None
    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm", "open_clip")]:
        del sys.modules[name]  # the failed import left half-initialised modules behind
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    try:
        return importlib.import_module(lib)
    except Exception as e:
        raise DataError(f"the installed {lib} cannot be imported here, even with the CPU shim "
                        f"({type(e).__name__}: {str(e).splitlines()[0]})") from None


_import = import_vision_library


def weights_fingerprint(spec: str, weights: str | Path | None) -> str | None:
    """What the weights of a model spec are, for result keys: None for a built-in model's committed
    checkpoint (verified against its recorded sha256 when loaded), the sha256 of a weights file, or the
    library and its version for a library's own ``pretrained`` weights."""
    if weights is None:
        return None
    if str(weights).startswith("package:"):
        from .packaged import packaged_weights_file

        return sha256_of(packaged_weights_file(str(weights).partition(":")[2])[0])
    if str(weights) == "pretrained":
        lib, _ = parse_model_spec(spec)
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"pretrained:{lib}-{version(lib)}"
        except PackageNotFoundError:
            return f"pretrained:{lib}"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return sha256_of(path)


def load_model(spec: str, weights: str | Path | None = None, *, num_classes: int | None = None) -> nn.Module:
    """Build the model named by ``spec`` with its weights, in eval mode, on the CPU (see the module doc)."""
    lib, name = parse_model_spec(spec)
    if lib == "builtin":
        if weights is None:
            return load_source_model(name)
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        meta = checkpoint_metadata(path) if path.with_suffix(".json").is_file() else {}
        arch = meta.get("arch", name)
        if arch != name:
            raise UsageError(f"weights {path} are a {arch!r} model (says {path.with_suffix('.json').name}) but "
                             f"--model {name} was given; pass --model {arch} or other weights")
        n_cls = meta.get("num_classes", num_classes or 10)
        if num_classes is not None and n_cls != num_classes:
            raise UsageError(f"weights {path} have {n_cls} classes but the dataset has {num_classes}")
        model = build_model(name, n_cls)
        return load_checkpoint(model, path, expected_sha256=meta.get("sha256")).eval()
    if weights is None:
        raise UsageError(f"model {spec!r} needs weights: a local state-dict file (--weights path.pt), or "
                         "--weights pretrained to let the library fetch its own (needs internet)")
    pretrained = str(weights) == "pretrained"
    packaged = str(weights).startswith("package:")
    if packaged:
        from .packaged import packaged_weights_file

        path, entry = packaged_weights_file(str(weights).partition(":")[2])
        if spec != entry.arch:
            raise UsageError(f"--weights {weights} fit --model {entry.arch}, not {spec}")
    module = _import(lib)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    try:
        if lib == "timm":
            model = module.create_model(name, pretrained=pretrained, **kwargs)
        else:
            model = module.models.get_model(name, weights="DEFAULT" if pretrained else None, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        hint = "; on an offline machine pass a local weights file" if pretrained else ""
        raise UsageError(f"cannot build {spec!r}: {e}{hint}") from None
    if packaged:
        from .checkpoints import safe_torch_load
        from .packaged import load_by_position

        load_by_position(model, safe_torch_load(path, "packaged weights"), str(weights))
    elif not pretrained:
        load_checkpoint(model, weights)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    add_input_normalization(model, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
    return model.eval()
