"""Tiny models built in the tests (no checkpoint needed)."""
import torch
from torch import nn

from entmin.models.small import SmallViT


def tiny_cnn(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def tiny_vit(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return SmallViT(num_classes, dim=16, depth=4, heads=2, patch=8)
