"""A small U-Net with BatchNorm for the scene task (the host of per-pixel Tent: its BN affine parameters)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DenseLogits", "SegUNet"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegUNet(nn.Module):
    """Three-level U-Net: (N, 1, H, W) -> logits (N, num_classes, H, W); H, W divisible by 4."""

    def __init__(self, num_classes: int = 11, width: int = 16, in_channels: int = 1) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(in_channels, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"SegUNet needs H and W divisible by 4, got {tuple(x.shape[-2:])}")
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class DenseLogits(nn.Module):
    """Any segmentation network as a ``(N, C_in, H, W) -> (N, K, H, W)`` logits module, so that the adapters
    and objectives take it as they take :class:`SegUNet`: torchvision's models return a dict (``{"out": ...,
    "aux": ...}``), others a tuple; ``in_channels`` repeats grayscale input for RGB backbones. E.g.::

        net = torchvision.models.segmentation.deeplabv3_resnet50(weights=..., num_classes=K)
        tent = make_adapter("tent", DenseLogits(net, in_channels=3), "adadem", num_classes=K)
    """

    def __init__(self, model: nn.Module, key: str = "out", in_channels: int | None = None) -> None:
        super().__init__()
        self.model, self.key, self.in_channels = model, key, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            if x.shape[1] != 1:
                raise ValueError(f"cannot turn {x.shape[1]} input channels into {self.in_channels}")
            x = x.expand(-1, self.in_channels, -1, -1)
        out = self.model(x)
        if isinstance(out, dict):
            out = out[self.key]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4:
            raise ValueError(f"the wrapped model returned {tuple(out.shape)}, not (N, K, H, W) logits")
        return out
