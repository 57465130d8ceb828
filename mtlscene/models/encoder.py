"""The shared encoder: input normalisation, dilated ResNet and ASPP (DeepLabV3-style)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mtlscene.describe import RecordsInitArgs
from mtlscene.models.aspp import ASPP
from mtlscene.models.resnet import DilatedResNet

# ImageNet statistics, which torchvision ResNet weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DeepLabEncoder(RecordsInitArgs, nn.Module):
    """ResNet with atrous convolutions followed by ASPP; shared by every task head.

    Takes images in [0, 1] (normalisation happens here, so data and visualisation stay in
    plain image space) and returns a feature map at 1/output_stride of the input size.

    Args:
        name: torchvision ResNet: resnet18, resnet34, resnet50 or resnet101.
        output_stride: 8, 16 or 32.
        aspp_channels: width of the ASPP branches and of the shared feature map.
        aspp_rates: dilation rates; default (6, 12, 18) scaled by 16 / output_stride.
        weights_path: optional local ResNet weights file.
        weights: optional torchvision ImageNet weights name, e.g. "IMAGENET1K_V2", loaded
            from torch's hub cache (downloaded there once when online).
        download_weights: allow that download; False fails naming the file to place.
    """

    # A checkpoint carries the trained weights: rebuilding it must not need this file.
    rebuild_without = ("weights_path",)

    def __init__(
        self,
        name: str = "resnet101",
        output_stride: int = 8,
        aspp_channels: int = 256,
        aspp_rates: Sequence[int] | None = None,
        weights_path: str | Path | None = None,
        weights: str | None = None,
        download_weights: bool = True,
    ) -> None:
        super().__init__()
        self.resnet = DilatedResNet(name, output_stride, weights_path, weights, download_weights)
        if aspp_rates is None:
            aspp_rates = [rate * 16 // output_stride for rate in (6, 12, 18)]
        self.aspp = ASPP(self.resnet.out_channels, aspp_channels, aspp_rates)
        self.out_channels = aspp_channels
        self.output_stride = output_stride
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.aspp(self.resnet((image - self.mean) / self.std))
