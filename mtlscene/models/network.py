"""The plain-torch multi-task network: one shared encoder, one decoder per task."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mtlscene.tasks.base import TaskHead


class MultiTaskNetwork(nn.Module):
    """Shared encoder plus a head per task; usable without Lightning.

    Args:
        encoder: a module mapping images Bx3xHxW to features with ``out_channels``.
        heads: task name -> TaskHead built for ``encoder.out_channels``.
    """

    def __init__(self, encoder: nn.Module, heads: Mapping[str, TaskHead]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        features = self.encoder(image)
        size = image.shape[-2:]
        return {name: head(features, size) for name, head in self.heads.items()}
