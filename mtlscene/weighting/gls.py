"""Geometric Loss Strategy (Chennupati et al., CVPR Workshops 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_mean


class GeometricLossWeighting(LossWeighting):
    """``total = (prod_i L_i)^(1/K)``, the geometric mean of the task losses.

    Its gradient is ``sum_i (total / (K L_i)) grad L_i``, so the reported weight of a task is
    ``total / (K L_i)``: tasks with small losses get large weights. The returned objective is
    ``sum_i w_i L_i`` with those weights held constant: same gradient, and its value is the
    geometric mean itself. Losses must be positive.

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
        values = stack_losses(self, losses)
        # Weights from the rank-averaged losses: averaged by DDP, each rank's sum_i w_i L_i
        # then has the gradient of the geometric mean of the whole (all-rank) batch's losses.
        mean = all_reduce_mean(values.detach()) + self.eps
        total = torch.exp(torch.log(mean).mean())
        self.last_weights.copy_(total / (len(self.tasks) * mean))
        return (self.last_weights * values).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)


__all__ = ["GeometricLossWeighting"]
