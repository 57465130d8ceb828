"""Soft Optimal Uncertainty Weighting, UW-SO (Kirchdorfer et al., GCPR 2024).

Kirchdorfer, Elich, Kutsche, Stuckenschmidt, Schott & Koehler, "Analytical
Uncertainty-Based Loss Weighting in Multi-Task Learning" (arXiv:2408.07985). Solving the
uncertainty-weighting objective for sigma in closed form gives weights inversely
proportional to each task's loss (their UW-O; see
`mtlscene.weighting.settled` for the derivation in this project's terms). UW-SO
normalises those optimal inverse-loss weights with a softmax at temperature T:

    w_i = softmax_i( (1 / L_i) / T ),    total = sum_i w_i L_i,  w detached,

computed from each batch's losses, as the authors' code does. The weights sum to 1; a small
T approaches "all weight on the task with the smallest loss", a large T equal weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_mean


class SoftOptimalUncertaintyWeighting(LossWeighting):
    """UW-SO: ``w = softmax((1 / L) / T)`` of the batch's detached losses.

    The losses are averaged over DDP processes before the softmax, so every rank uses the
    same weights. A task without targets in the batch is left out of the softmax (its
    zero loss would otherwise take all the weight) and adds nothing.

    Args:
        temperature: T of the softmax (the authors tune it per dataset; 1 is their code's
            default).
        eps: added to each loss before it is inverted.
    """

    def __init__(self, temperature: float = 1.0, eps: float = 1e-8) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f"SoftOptimalUncertaintyWeighting.temperature must be > 0, got {temperature}"
            )
        self.temperature = temperature
        self.eps = eps

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        self.register_buffer("last_weights", torch.full((n,), 1.0 / n), persistent=False)

    def softmax_weights(self, values: Tensor, present: Tensor) -> Tensor:
        """The UW-SO weights of the loss vector ``values`` (tasks where ``present`` only)."""
        inverse = 1.0 / (all_reduce_mean(values.detach()) + self.eps)
        logits = torch.where(
            present, inverse / self.temperature, torch.full_like(inverse, -torch.inf)
        )
        # A batch with no target at all: every logit is -inf, the softmax NaN; weigh nothing.
        return torch.nan_to_num(torch.softmax(logits, dim=0), nan=0.0)

    def _combine(self, values: Tensor, present: Tensor) -> Tensor:
        weights = self.softmax_weights(values, present)
        self.last_weights.copy_(weights)
        return (weights * torch.where(present, values, torch.zeros_like(values))).sum()

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        return self._combine(values, torch.ones_like(values, dtype=torch.bool))

    def combine_present(self, losses: Mapping[str, Tensor], present: Mapping[str, Tensor]):
        values = stack_losses(self, losses)
        mask = torch.stack(
            [present.get(name, torch.ones((), dtype=torch.bool)) for name in self.tasks]
        ).to(values.device)
        return self._combine(values, mask)

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


__all__ = ["SoftOptimalUncertaintyWeighting"]
