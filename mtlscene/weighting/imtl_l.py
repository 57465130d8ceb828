"""IMTL-L, the loss-balancing half of Impartial Multi-Task Learning (Liu et al., ICLR 2021)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses


class IMTLLWeighting(LossWeighting):
    """``total = sum_i exp(s_i) L_i - s_i`` with one learned scale ``s_i`` per task.

    At the optimum ``exp(s_i) L_i = 1``: every scaled loss is balanced to one. The scales are
    trained with the network (their own optimizer group, no weight decay).

    Args:
        lr: learning rate of the scales; None uses the optimizer's.
    """

    def __init__(self, lr: float | None = None) -> None:
        super().__init__()
        self.lr = lr

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        self.log_scale = nn.Parameter(torch.zeros(len(self.likelihoods)))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        return (torch.exp(self.log_scale) * values - self.log_scale).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, torch.exp(self.log_scale))


__all__ = ["IMTLLWeighting"]
