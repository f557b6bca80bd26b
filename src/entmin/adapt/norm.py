"""No-update baselines: ``source`` (the model as trained) and ``bn`` (test-batch BatchNorm statistics)."""
from __future__ import annotations

from .base import Adapter

__all__ = ["BNAdapter", "SourceAdapter"]


class SourceAdapter(Adapter):
    """The unadapted model in eval mode (BatchNorm uses its running statistics)."""

    adapts = False
    batch_stats = False


class BNAdapter(Adapter):
    """Normalise with the statistics of each test batch; no parameter is updated (BN-1 / "norm")."""

    adapts = False
