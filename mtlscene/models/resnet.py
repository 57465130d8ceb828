"""torchvision ResNets with the output stride set by dilation, for any block type."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet

from mtlscene.models.pretrained import fetch_weights_file, resolve_weights

RESNETS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
}

# Dilation of (layer3, layer4) for each output stride, as in DeepLabV3.
_DILATIONS = {32: (1, 1), 16: (1, 2), 8: (2, 4)}


def _dilate(layer: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Replace a layer's stride by dilation in place.

    torchvision's ``replace_stride_with_dilation`` refuses BasicBlock (ResNet-18/34), so
    instead of rebuilding blocks we rewrite the convolutions: every stride becomes 1 and
    every 3x3 conv gets the dilation (and matching padding). As in torchvision's
    ``_make_layer`` and DeepLab, the first block keeps the previous stage's dilation: its
    conv replaces the strided one, and dilating it already would skip input pixels that
    the strided conv saw. Parameter shapes are unchanged, so ImageNet weights still load.
    """
    for index, block in enumerate(layer):
        rate = previous_dilation if index == 0 else dilation
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                module.stride = (1, 1)
                if module.kernel_size == (3, 3):
                    module.dilation = (rate, rate)
                    module.padding = (rate, rate)


class DilatedResNet(nn.Module):
    """A ResNet trunk (no pooling or fc) returning the last feature map.

    Args:
        name: one of resnet18, resnet34, resnet50, resnet101.
        output_stride: 8, 16 or 32: input size / feature size.
        weights_path: optional local file with a torchvision ResNet state dict (e.g.
            ``resnet101-63fe2227.pth``); nothing is downloaded.
        weights: optional torchvision ImageNet weights of ``name`` ("IMAGENET1K_V2",
            "IMAGENET1K_V1", "DEFAULT"), read from torch's hub cache and downloaded there
            first when missing (see `mtlscene.models.pretrained`).
        download_weights: allow that download; False fails with the file to place instead.
    """

    def __init__(
        self,
        name: str = "resnet101",
        output_stride: int = 8,
        weights_path: str | Path | None = None,
        weights: str | None = None,
        download_weights: bool = True,
    ) -> None:
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(RESNETS)}")
        if output_stride not in _DILATIONS:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if weights is not None and weights_path is not None:
            raise ValueError(
                "set only one of model.backbone weights (torchvision ImageNet weights) and "
                "weights_path (a local file)"
            )
        net = RESNETS[name](weights=None)
        if weights is not None:
            weights_path = fetch_weights_file(resolve_weights(name, weights), download_weights)
        if weights_path is not None:
            load_resnet_weights(net, weights_path)
        d3, d4 = _DILATIONS[output_stride]
        if d3 > 1:
            _dilate(net.layer3, d3, previous_dilation=1)
        if d4 > 1:
            _dilate(net.layer4, d4, previous_dilation=d3)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
        self.out_channels = net.fc.in_features
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


def load_resnet_weights(net: nn.Module, weights_path: str | Path) -> None:
    """Load a local torchvision ResNet state dict safely (``weights_only``), fc excluded."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights file {path} does not exist; set model.backbone.weights_path to "
            "a downloaded torchvision ResNet .pth file, or to null to train from scratch"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several unrelated types
        raise ValueError(f"cannot read backbone weights {path}: {error}") from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"backbone weights {path} do not match the architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; check model.backbone.name"
        )
