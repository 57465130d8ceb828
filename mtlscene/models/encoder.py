"""The shared encoder: input normalisation, dilated ResNet and ASPP (DeepLabV3-style)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mtlscene.describe import RecordsInitArgs
from mtlscene.models.aspp import ASPP
from mtlscene.models.resnet import DilatedResNet

#: Where task heads may split from the shared encoder, from the latest to the earliest: after
#: ASPP (everything shared), after ResNet layer4 (each head owns an ASPP), after layer3 (each
#: head owns layer4 and an ASPP).
BRANCH_POINTS = ("aspp", "layer4", "layer3")

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

    def split_at(self, branch_point: str) -> tuple[nn.Module, nn.Module]:
        """Cut this encoder in place at ``branch_point``: ``(shared part, tail)``.

        The shared part is this encoder, now ending at the branch point (``out_channels``
        follows); the tail maps its features to the full encoder's output, so
        ``tail(shared(x))`` equals the uncut forward. Parameter names of the shared stages
        stay as they were (``resnet.layers.0`` ...); the tail names its stages ``layer4`` and
        ``aspp``. At "aspp" nothing is cut and the tail is an identity without parameters.

        Args:
            branch_point: one of `BRANCH_POINTS`.
        """
        if branch_point not in BRANCH_POINTS:
            raise ValueError(
                f"branch point must be one of {', '.join(BRANCH_POINTS)}, got {branch_point!r}"
            )
        if branch_point == "aspp":
            return self, nn.Identity()
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        if branch_point == "layer3":
            layers = list(self.resnet.layers)
            stages["layer4"] = layers[3]
            self.resnet.layers = nn.Sequential(*layers[:3])
            self.resnet.out_channels = _output_channels(layers[2])
        stages["aspp"] = self.aspp
        self.aspp = nn.Identity()
        self.out_channels = self.resnet.out_channels
        return self, nn.Sequential(stages)


def _output_channels(layer: nn.Module) -> int:
    """Channels a ResNet stage outputs: its last block's last BatchNorm (only a stage's first
    block has a downsample branch, so the last block's last norm is the output's)."""
    norms = [m for m in layer[-1].modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features
