"""Plain-torch network parts: dilated ResNet, ASPP, shared encoder, multi-task network."""

from mtlscene.models.aspp import ASPP
from mtlscene.models.encoder import DeepLabEncoder
from mtlscene.models.network import MultiTaskNetwork
from mtlscene.models.resnet import DilatedResNet

__all__ = ["ASPP", "DeepLabEncoder", "DilatedResNet", "MultiTaskNetwork"]
