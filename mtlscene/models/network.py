"""The plain-torch multi-task network: one shared encoder, one decoder per task."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mtlscene.tasks.aleatoric import aleatoric_key
from mtlscene.tasks.base import TaskHead


class MultiTaskNetwork(nn.Module):
    """Shared encoder plus a head per task; usable without Lightning.

    The outputs map each task to its prediction channels; a head with ``aleatoric: true``
    adds its bounded per-pixel log-scale under ``aleatoric_key(task)`` ("<task>/aleatoric",
    Bx1xHxW), so readers of ``outputs[task]`` see the same tensor with or without it.

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
        outputs: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            prediction, log_scale = head.split_output(head(features, size))
            outputs[name] = prediction
            if log_scale is not None:
                outputs[aleatoric_key(name)] = log_scale
        return outputs
