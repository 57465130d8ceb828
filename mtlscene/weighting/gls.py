"""Geometric Loss Strategy (Chennupati et al., CVPR Workshops 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses


class GeometricLossWeighting(LossWeighting):
    """``total = (prod_i L_i)^(1/K)``, the geometric mean of the task losses.

    Its gradient is ``sum_i (total / (K L_i)) grad L_i``, so the reported weight of a task is
    ``total / (K L_i)``: tasks with small losses get large weights. Losses must be positive.

    Args:
        eps: added to every loss before the logarithm, so a loss of exactly 0 stays finite.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        self.register_buffer("last_weights", torch.ones(len(self.likelihoods)))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses) + self.eps
        total = torch.exp(torch.log(values).mean())
        self.last_weights.copy_(total.detach() / (len(self.tasks) * values.detach()))
        return total

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)


__all__ = ["GeometricLossWeighting"]
