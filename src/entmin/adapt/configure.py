"""Which layers adapt: norm-layer discovery, batch-statistics BatchNorm, trainable-parameter selection.

This is tent's ``configure_model``/``collect_params`` made model-agnostic: BatchNorm layers normalise with
the statistics of the current test batch (their running buffers are dropped, as in tent), and the affine
parameters of BatchNorm/LayerNorm/GroupNorm layers are the default trainable set.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "BN_TYPES",
    "NORM_TYPES",
    "has_batchnorm",
    "infer_num_classes",
    "norm_layers",
    "select_parameters",
    "use_batch_statistics",
]

BN_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
                                           nn.modules.instancenorm._InstanceNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())

ParamFilter = Callable[[str, nn.Parameter, nn.Module], bool]


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, BN_TYPES) for m in model.modules())


def use_batch_statistics(model: nn.Module) -> None:
    """Make every BatchNorm layer normalise with the current batch's statistics, in train and eval mode."""
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


def _is_under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def select_parameters(model: nn.Module, trainable: str | ParamFilter = "norm",
                      frozen_modules: Sequence[str] = ()) -> list[tuple[str, nn.Parameter]]:
    """Set ``requires_grad`` on the chosen parameters only and return them (name, parameter).

    ``trainable``: ``"norm"`` (affine of norm layers), ``"all"``, a regex on parameter names, or a callable
    ``(name, param, module) -> bool``. Parameters under ``frozen_modules`` are never trained.
    """
    model.requires_grad_(False)
    chosen: list[tuple[str, nn.Parameter]] = []
    regex = None
    if isinstance(trainable, str) and trainable not in ("norm", "all"):
        try:
            regex = re.compile(trainable)
        except re.error as e:
            raise ValueError(f"trainable={trainable!r} is neither 'norm', 'all' nor a valid regex: {e}") from None
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if _is_under(full, frozen_modules):
                continue
            if trainable == "norm":
                keep = isinstance(module, NORM_TYPES)
            elif trainable == "all":
                keep = True
            elif regex is not None:
                keep = bool(regex.search(full))
            else:
                keep = bool(trainable(full, param, module))  # type: ignore[operator]
            if keep:
                param.requires_grad_(True)
                chosen.append((full, param))
    return chosen


def infer_num_classes(model: nn.Module) -> int | None:
    """Output width of the model's last ``nn.Linear``, a good guess for the class count."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last.out_features if last is not None else None


def module_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
