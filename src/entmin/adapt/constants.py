"""The hosts' constants, scaled by the class count C, in one place (the official codes hard-code ImageNet's
C = 1000). Each is also an option of its adapter.
"""
from __future__ import annotations

import math

__all__ = ["ADAPTER_DEFAULT_LR", "deyo_entropy_threshold", "eta_redundancy_margin", "reliability_threshold",
           "sar_reset_constant"]

# SGD (momentum 0.9) learning rate of every host at batch 64 when none is given: the hosts' ViT-B/16 value.
ADAPTER_DEFAULT_LR = 1e-3


def reliability_threshold(num_classes: int) -> float:
    """E0 = 0.4 ln C: ETA/EATA/SAR's reliable-sample threshold and the entropy re-weighting margin."""
    return 0.4 * math.log(num_classes)


def deyo_entropy_threshold(num_classes: int) -> float:
    """DeYO's entropy filter 0.5 ln C."""
    return 0.5 * math.log(num_classes)


def sar_reset_constant(num_classes: int) -> float:
    """SAR's recovery threshold: the official 0.2 at ImageNet's entropy scale, 0.2 ln C / ln 1000."""
    return 0.2 * math.log(num_classes) / math.log(1000)


def eta_redundancy_margin(num_classes: int) -> float:
    """ETA's cosine redundancy margin 0.05 * sqrt(1000 / C): the cosine of a one-hot prediction and a uniform
    mean is 1/sqrt(C), and ImageNet's 0.05 sits at 1.58/sqrt(1000); kept at 0.05 with C = 10 the filter would
    reject nearly every confident sample."""
    return 0.05 * math.sqrt(1000.0 / num_classes)
