"""Input validation shared by objectives and adapters.

Every public entry point checks its inputs here so that bad input fails loudly with a message naming the
problem, instead of silently producing NaN losses or broadcasting a wrongly shaped tensor.
"""
from __future__ import annotations

import math

import torch

__all__ = ["check_images", "check_logits", "check_positive", "check_range", "compute_dtype"]


def check_logits(logits: torch.Tensor, *, name: str = "logits", num_classes: int | None = None,
                 check_finite: bool = True, dense: bool = False) -> None:
    """Raise ``ValueError`` unless ``logits`` is a finite floating (N, C) tensor with C >= 2; with ``dense``
    also (N, C, *) (per pixel (N, C, H, W), per token (N, C, L): classes always on dim 1)."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 2 and not (dense and logits.dim() > 2):
        want = "(N, C) or, per pixel/token, (N, C, *)" if dense else "(N, C)"
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes (C >= 2), got C = {logits.shape[1]}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"{name} has {logits.shape[1]} classes but the objective was built for "
                         f"num_classes = {num_classes}")
    if check_finite and logits.numel() > 0:
        # One reduction instead of an element-wise mask: any NaN/Inf makes the sum non-finite. A finite
        # but overflowing sum falls through to the exact element-wise check.
        acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
        if not bool(torch.isfinite(logits.sum(dtype=acc))) and not bool(torch.isfinite(logits).all()):
            bad = "NaN" if bool(torch.isnan(logits).any()) else "Inf"
            raise ValueError(f"{name} contain {bad} values; the model output is not finite")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision logits are computed in float32 (softmax/log in fp16 underflows); others as is."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    value = float(value)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {rel}, got {value}")
    return value


def check_range(value: float, name: str, low: float, high: float, *, low_open: bool = True,
                high_open: bool = False) -> float:
    value = float(value)
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if math.isnan(value) or not (ok_low and ok_high):
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{hb}, got {value}")
    return value


def check_images(x: object, who: str, shape: tuple[int | None, ...] | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating (N, ...) torch tensor (of ``shape``, ``None`` = any size):
    integer images (0-255) would silently give wrong predictions, NumPy arrays a raw torch error."""
    if not isinstance(x, torch.Tensor):
        hint = "; convert with torch.from_numpy(x).float() (divide uint8 images by 255)" if \
            type(x).__module__.startswith("numpy") else ""
        raise ValueError(f"{who} expects a torch.Tensor of images, got {type(x).__module__}.{type(x).__name__}"
                         f"{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{who} expects floating-point images in [0, 1], got dtype {x.dtype}"
                         + (" (divide uint8 images by 255)" if x.dtype == torch.uint8 else ""))
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{who} expects a non-empty batch (N, ...) of images, got shape {tuple(x.shape)}")
    if shape is not None and (x.dim() != len(shape) + 1 or
                              any(s is not None and s != d for s, d in zip(shape, x.shape[1:]))):
        want = "(N, " + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{who} expects images of shape {want}, got {tuple(x.shape)}")
