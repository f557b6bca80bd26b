"""Entropy minimisation for dense prediction: Fashion-MNIST scenes with per-pixel labels, a small BatchNorm
U-Net, segmentation metrics, and test-time adaptation with per-pixel objectives (dem_spec.md section 5)."""
from __future__ import annotations

from .metrics import SegMetrics, confusion_matrix
from .model import DenseLogits, SegUNet
from .scenes import BACKGROUND, NUM_SEG_CLASSES, SCENES_VERSION, SceneData, make_scenes

__all__ = [
           "BACKGROUND",
           "NUM_SEG_CLASSES",
           "SCENES_VERSION",
           "DenseLogits",
           "SceneData",
           "SegMetrics",
           "SegUNet",
           "confusion_matrix",
           "make_scenes",
]
