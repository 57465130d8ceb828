"""The plain-torch multi-task network: one shared encoder, one decoder per task."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.errors import ConfigError
from mtlscene.models.encoder import BRANCH_POINTS
from mtlscene.tasks.base import TaskHead
from mtlscene.uncertainty.aleatoric import aleatoric_key


def branch_heads(encoder: nn.Module, heads: Mapping[str, TaskHead], branch_point: str) -> nn.Module:
    """Split ``encoder`` at ``branch_point``; each head gets its own copy of the later stages.

    The heads must have been built for the full encoder's ``out_channels``. Returns the
    shared part, which the network keeps as its ``encoder``: gradient-based weightings treat
    its parameters as the shared ones and everything inside a head as that task's own.

    Args:
        encoder: the full shared encoder; cut in place unless ``branch_point`` is "aspp".
        heads: task name -> head; each receives a deep copy of the tail (``attach_trunk``).
        branch_point: one of ``BRANCH_POINTS`` ("aspp": nothing moves).

    Raises:
        ConfigError: an unknown branch point, or one that the encoder cannot split at.
    """
    if branch_point not in BRANCH_POINTS:
        raise ConfigError(
            f"model.branch_point must be one of {', '.join(BRANCH_POINTS)}, got {branch_point!r}"
        )
    if branch_point == "aspp":
        return encoder
    if not callable(getattr(encoder, "split_at", None)):
        raise ConfigError(
            f"model.branch_point={branch_point!r} needs a backbone that can be split "
            f"(a split_at method, as mtlscene.models.DeepLabEncoder has); "
            f"{type(encoder).__name__} has none: use model.branch_point=aspp with this backbone"
        )
    shared, tail = encoder.split_at(branch_point)
    for head in heads.values():
        head.attach_trunk(copy.deepcopy(tail))
    return shared


class MultiTaskNetwork(nn.Module):
    """Shared encoder plus a head per task; usable without Lightning.

    A head may own encoder stages of its own (its ``trunk``, see `branch_heads`); the
    network does not need to know: each head maps the shared features to its output.

    The outputs map each task to its prediction channels; a head with ``aleatoric: true``
    adds its bounded per-pixel log-scale under ``aleatoric_key(task)`` ("<task>/aleatoric",
    Bx1xHxW), so readers of ``outputs[task]`` see the same tensor with or without it.

    Args:
        encoder: a module mapping images Bx3xHxW to features with ``out_channels``.
        heads: task name -> TaskHead built for ``encoder.out_channels``.
        keep_representation: keep the encoder's output of the last forward with gradients
            for `take_representation` (for weightings that take the task gradients
            there, ``rep_grad``); off by default, so nothing outlives a step.
    """

    def __init__(
        self, encoder: nn.Module, heads: Mapping[str, TaskHead], keep_representation: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))
        self.keep_representation = keep_representation
        self._representation: Tensor | None = None

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        features = self.encoder(image)
        if self.keep_representation and torch.is_grad_enabled():
            self._representation = features
        size = image.shape[-2:]
        outputs: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            prediction, log_scale = head.split_output(head(features, size))
            outputs[name] = prediction
            if log_scale is not None:
                outputs[aleatoric_key(name)] = log_scale
        return outputs

    def take_representation(self) -> Tensor | None:
        """The shared encoder's output of the last forward with gradients, then forgotten.

        None unless ``keep_representation``. Where the heads own encoder stages
        (``branch_point`` other than "aspp") this is the shared part's output, the input of
        every head.
        """
        representation, self._representation = self._representation, None
        return representation
