"""Equal weighting: the plain sum of task losses, the reference every method is compared to."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses


class EqualWeighting(LossWeighting):
    """``total = sum_i L_i`` (every weight 1)."""

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        # A buffer follows the model to its device, so logging the weights needs no copy.
        self.register_buffer("ones", torch.ones(len(self.likelihoods)), persistent=False)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        return stack_losses(self, losses).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.ones)


__all__ = ["EqualWeighting"]
