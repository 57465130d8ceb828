"""Atrous Spatial Pyramid Pooling (DeepLabV3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = 0 if kernel == 1 else dilation
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """The ASPP branch that sees the whole image: global average, 1x1 conv, broadcast back."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        # GroupNorm rather than BatchNorm: a 1x1 map has one value per channel per image, so
        # BatchNorm would fail for a batch of one.
        self.project = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.GroupNorm(1, out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Parallel 1x1, dilated 3x3 and image-pooling branches, concatenated and projected.

    Args:
        in_channels: channels of the backbone feature map.
        out_channels: channels of every branch and of the output.
        rates: dilation rates of the 3x3 branches (DeepLabV3: 6, 12, 18 at output stride 16,
            doubled at output stride 8).
        dropout: dropout after the projection.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        dropout: float = 0.1,
    ):
        super().__init__()
        branches = [_conv_bn_relu(in_channels, out_channels, 1)]
        branches += [_conv_bn_relu(in_channels, out_channels, 3, rate) for rate in rates]
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            _conv_bn_relu(out_channels * len(branches), out_channels, 1), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
