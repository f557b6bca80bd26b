"""The built-in source models: a small CNN with BatchNorm and a small ViT with LayerNorm.

Both take (N, 1, 32, 32) images in [0, 1] and normalise inside the model (so adapters and corruptions
work on raw pixels, and the normalisation can never be mismatched, cf. SAR#5).
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_images

__all__ = ["MODEL_NAMES", "SmallCNN", "SmallViT", "build_model"]

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


class Normalize(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _block(cin: int, cout: int, stride: int, norm: str = "bn") -> nn.Sequential:
    layer = nn.BatchNorm2d(cout) if norm == "bn" else nn.GroupNorm(8, cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), layer, nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Five conv-norm-ReLU blocks (32-32-64-64-128), global average pooling, linear head (~140k params).

    ``norm="bn"``: BatchNorm (the ``cnn`` model); ``norm="gn"``: GroupNorm with 8 groups (``cnn_gn``), whose
    statistics are per sample, so that it runs at test batch size 1 (SAR's R-50 (GN) counterpart)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32, norm: str = "bn") -> None:
        super().__init__()
        if norm not in ("bn", "gn"):
            raise ValueError(f"norm must be bn or gn, got {norm!r}")
        w = width
        self.in_channels = in_channels
        self.norm_input = Normalize(FMNIST_MEAN, FMNIST_STD)
        self.features = nn.Sequential(*(_block(a, b, s, norm) for a, b, s in (
            (in_channels, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 2))))
        self.head = nn.Linear(4 * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "SmallCNN", (self.in_channels, None, None))
        return self.features(self.norm_input(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm -> attention, LayerNorm -> MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """ViT with 4x4 patches on 32x32 (64 tokens + class token), LayerNorm everywhere; timm-like names
    (``blocks``, ``norm``) so SAR/DeYO's top-block freezing applies."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dim: int = 96, depth: int = 6, heads: int = 4,
                 patch: int = 4, image_size: int = 32) -> None:
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.norm_input = Normalize(FMNIST_MEAN, FMNIST_STD)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, patch)
        n_tokens = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "SmallViT", (self.in_channels, self.image_size, self.image_size))
        t = self.patch_embed(self.norm_input(x)).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1) + self.pos_embed
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


MODEL_NAMES = ("cnn", "cnn_gn", "vit")


def build_model(name: str, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    if name in ("cnn", "cnn_gn"):
        return SmallCNN(num_classes, in_channels, norm="gn" if name == "cnn_gn" else "bn")
    if name == "vit":
        return SmallViT(num_classes, in_channels)
    raise ValueError(f"unknown built-in model {name!r}; choose one of {MODEL_NAMES}")
