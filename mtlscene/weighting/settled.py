"""Uncertainty weighting at its settled point: ``w* = 1 / (2 k L)`` applied directly.

Learned uncertainty weighting (Kendall et al., CVPR 2018) minimises, per task,
``c * exp(-k s) * L + s / 2`` over ``s = log sigma^2``. For a given loss L the minimum is at
``c * exp(-k s*) = 1 / (2 k L)`` (set the derivative in s to zero), so the weight that s
moves towards is ``w* = 1 / (2 k L)``: ``1 / (2 L)`` for the Gaussian and Boltzmann terms
(k = 1), ``1 / L`` for the Laplace term (k = 1/2). A learned s only gets there at the pace
its optimizer allows; this weighting skips the pace and uses ``w*`` of the running-averaged
loss at every step. It tests whether the learned weights fall short of hand-tuned ones
because they had not settled (``mtlscene.experiments.settling`` measures how far they were),
not because of where they settle. Kirchdorfer et al. (2024, "Analytical Uncertainty-Based
Loss Weighting in Multi-Task Learning", arXiv:2408.07985) call the per-batch form of this
optimum UW-O; `SoftOptimalUncertaintyWeighting` is their
softmax-normalised variant.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_sum


class SettledUncertaintyWeighting(LossWeighting):
    """``total = sum_i w*_i L_i`` with ``w*_i = 1 / (2 k_i Lbar_i)``, weights detached.

    ``Lbar_i`` is an exponential moving average of task i's training loss (summed over DDP
    processes before it is averaged, so every rank uses the same weights); a batch without
    targets for a task leaves its average unchanged. `sigmas` reports the sigma whose
    learned term would give the same weight, so settled and learned runs share the sigma
    plots. A task with per-pixel sigma (``aleatoric: true``) keeps weight 1 and has no
    sigma, as under learned uncertainty weighting (whose settled point this is).

    Args:
        momentum: weight of the previous average in ``Lbar <- m Lbar + (1 - m) L``; 0 uses
            each batch's loss alone (UW-O's per-batch form).
        min_loss: floor on ``Lbar`` so a task whose loss reaches 0 cannot get an unbounded
            weight.
    """

    def __init__(self, momentum: float = 0.9, min_loss: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"SettledUncertaintyWeighting.momentum must be in [0, 1), got {momentum}"
            )
        if min_loss <= 0:
            raise ValueError(f"SettledUncertaintyWeighting.min_loss must be > 0, got {min_loss}")
        self.momentum = momentum
        self.min_loss = min_loss

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        constants = [self.likelihoods[name].weight_exponent() for name in self.likelihoods]
        self.register_buffer("scale", torch.tensor([c for c, _ in constants]), persistent=False)
        self.register_buffer("exponent", torch.tensor([k for _, k in constants]), persistent=False)
        # Saved in checkpoints: a resumed run continues with the same averages.
        self.register_buffer("loss_average", torch.ones(n))
        self.register_buffer("seen", torch.zeros(n, dtype=torch.bool))
        per_pixel = [name in self.per_pixel_tasks for name in self.likelihoods]
        self.register_buffer("per_pixel", torch.tensor(per_pixel), persistent=False)

    def update_average(self, values: Tensor, present: Tensor) -> None:
        """Fold one batch's losses (where ``present``) into the running averages."""
        sums = all_reduce_sum(torch.cat([values.detach() * present, present.float()]))
        n = len(self.tasks)
        counts = sums[n:]
        batch_mean = sums[:n] / counts.clamp(min=1)
        here = counts > 0
        # The first batch with a target sets the average; later ones blend into it.
        blended = torch.where(
            self.seen,
            self.momentum * self.loss_average + (1 - self.momentum) * batch_mean,
            batch_mean,
        )
        self.loss_average.copy_(torch.where(here, blended, self.loss_average))
        self.seen |= here

    def current_weights(self) -> Tensor:
        """``1 / (2 k Lbar)`` per task (1 for a task not seen yet, or with per-pixel sigma)."""
        settled = 1.0 / (2.0 * self.exponent * self.loss_average.clamp(min=self.min_loss))
        return torch.where(self.seen & ~self.per_pixel, settled, torch.ones_like(settled))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        self.update_average(values, torch.ones_like(values, dtype=torch.bool))
        return (self.current_weights() * values).sum()

    def combine_present(self, losses: Mapping[str, Tensor], present: Mapping[str, Tensor]):
        values = stack_losses(self, losses)
        mask = torch.stack(
            [present.get(name, torch.ones((), dtype=torch.bool)) for name in self.tasks]
        ).to(values.device)
        self.update_average(values, mask)
        values = torch.where(mask, values, torch.zeros_like(values))
        return (self.current_weights() * values).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.current_weights())

    def log_variances(self) -> dict[str, Tensor]:
        # The s of the learned term c * exp(-k s) that gives the same weight.
        s = as_dict(self, -torch.log(self.current_weights() / self.scale) / self.exponent)
        return {name: value for name, value in s.items() if name not in self.per_pixel_tasks}

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, min_loss={self.min_loss}"


__all__ = ["SettledUncertaintyWeighting"]
