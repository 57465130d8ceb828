"""Random Loss Weighting (Lin et al., TMLR 2022)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses


class RandomLossWeighting(LossWeighting):
    """Fresh random weights every step: ``w = K softmax(z)``, ``z ~ N(0, I)``; sum(w) = K.

    The weights come from the weighting's own generator, seeded by ``seed`` and saved in
    checkpoints, so every DDP rank draws the same weights at the same step (all ranks start
    from the same seed and draw once per step) and a resumed run continues the sequence.

    Args:
        seed: seed of the generator that draws the weights.
    """

    # Its draws come from a host generator that a captured graph would replay frozen.
    capturable = False

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        self.register_buffer("last_weights", torch.ones(len(self.likelihoods)))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        # Drawn on the CPU generator (same stream on every device), then copied over: a
        # host-to-device copy does not stall like a read-back.
        logits = torch.randn(len(self.tasks), generator=self.generator)
        weights = len(self.tasks) * torch.softmax(logits, dim=0)
        self.last_weights.copy_(weights)
        return (self.last_weights * values).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


__all__ = ["RandomLossWeighting"]
