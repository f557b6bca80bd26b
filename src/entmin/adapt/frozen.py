"""SAR and DeYO leave the top of the network out of adaptation: the official code skips ResNet-50's ``layer4``
and ViT-B/16's blocks 9-11 plus the final norm, by name. This module states the same rule for each
architecture family ("the last stage", "the last quarter of the transformer blocks", and every norm above
them), so that it is neither silently empty (torchvision ViT, Swin, ConvNeXt) nor half right (EfficientNet's
head BatchNorm above its last stage).

Each rule is (family, test, frozen module names); the first rule whose test matches decides. No match: a
warning, and nothing frozen (pass ``frozen_modules=`` to choose).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["FROZEN_RULES", "FrozenRule", "default_frozen_modules", "frozen_rule_for"]


def _norm_bearing(module: nn.Module) -> bool:
    from .configure import NORM_TYPES

    return any(isinstance(m, NORM_TYPES) and any(True for _ in m.parameters()) for m in module.modules())


def _after(model: nn.Module, child: str) -> list[str]:
    """Top-level children after ``child`` that hold a norm layer (the final norm, EfficientNet's bn2, ...)."""
    names = list(dict(model.named_children()))
    return [n for n in names[names.index(child) + 1:] if _norm_bearing(getattr(model, n))]


def _last_quarter(prefix: str, seq: nn.Module) -> list[str]:
    n = len(seq)
    return [f"{prefix}.{i}" for i in range(n - max(1, n // 4), n)]


def _seq(model: nn.Module, name: str) -> nn.Module | None:
    m = dict(model.named_children()).get(name)
    return m if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) >= 2 else None


def _is_small_cnn(model: nn.Module) -> bool:
    from ..models.small import SmallCNN

    return isinstance(model, SmallCNN)


@dataclass(frozen=True)
class FrozenRule:
    family: str
    applies: Callable[[nn.Module], bool]
    frozen: Callable[[nn.Module], list[str]]


FROZEN_RULES: tuple[FrozenRule, ...] = (
    # entmin's own 5-block CNN has no stages; its committed results were measured with nothing frozen
    FrozenRule("entmin SmallCNN", _is_small_cnn, lambda m: []),
    FrozenRule("ResNet / WideResNet / ResNet-GN (layer4)", lambda m: hasattr(m, "layer4"),
               lambda m: ["layer4", *_after(m, "layer4")]),
    FrozenRule("RegNet, timm (s4)", lambda m: hasattr(m, "s4"), lambda m: ["s4", *_after(m, "s4")]),
    FrozenRule("RegNet, torchvision (trunk_output.block4)",
               lambda m: hasattr(getattr(m, "trunk_output", None), "block4"), lambda m: ["trunk_output.block4"]),
    FrozenRule("ViT, torchvision (encoder.layers, encoder.ln)",
               lambda m: hasattr(getattr(m, "encoder", None), "layers") and hasattr(m.encoder, "ln"),
               lambda m: [*_last_quarter("encoder.layers", m.encoder.layers), "encoder.ln"]),
    FrozenRule("CNN stages in `blocks` (timm EfficientNet, MobileNet)",
               lambda m: _seq(m, "blocks") is not None and all(isinstance(b, nn.Sequential) for b in m.blocks),
               lambda m: [f"blocks.{len(m.blocks) - 1}", *_after(m, "blocks")]),
    FrozenRule("ViT / DeiT / entmin SmallViT (transformer `blocks` + final norm)",
               lambda m: _seq(m, "blocks") is not None,
               lambda m: [*_last_quarter("blocks", m.blocks), *_after(m, "blocks")]),
    FrozenRule("Swin, timm (layers + norm)", lambda m: _seq(m, "layers") is not None,
               lambda m: [f"layers.{len(m.layers) - 1}", *_after(m, "layers")]),
    FrozenRule("ConvNeXt, timm (stages + head norm)", lambda m: _seq(m, "stages") is not None,
               lambda m: [f"stages.{len(m.stages) - 1}", *_after(m, "stages")]),
    FrozenRule("torchvision `features` (EfficientNet, MobileNet, ConvNeXt, Swin)",
               lambda m: _seq(m, "features") is not None,
               lambda m: [*_last_quarter("features", m.features), *_after(m, "features")]),
)


def frozen_rule_for(model: nn.Module) -> FrozenRule | None:
    return next((r for r in FROZEN_RULES if r.applies(model)), None)


def default_frozen_modules(model: nn.Module) -> list[str]:
    """Module names SAR/DeYO leave out by default (the official top-layer rule, by architecture family)."""
    rule = frozen_rule_for(model)
    if rule is None:
        warnings.warn(f"no SAR/DeYO top-layer rule for {type(model).__name__}: nothing is frozen; pass "
                      "frozen_modules=[...] (module names) to choose, or [] to silence this", UserWarning,
                      stacklevel=3)
        return []
    return rule.frozen(model)
