"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_sum


class DWAWeighting(LossWeighting):
    """Weights from how fast each task's epoch loss fell over the last two epochs.

    ``w_i = K softmax_i(r / T)`` with ``r_i = Lbar_i(t-1) / Lbar_i(t-2)``, the ratio of the
    task's mean training loss over the two previous epochs; uniform (all 1) until two epochs
    are complete. The epoch means are summed over all DDP processes before they enter the
    history, so every rank holds the same weights. The history is a buffer: it is saved in
    checkpoints and a resumed run continues with the same weights.

    Args:
        temperature: T; larger values make the weights more uniform (the paper uses 2).
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"DWAWeighting.temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        self.register_buffer("loss_sum", torch.zeros(n))
        self.register_buffer("batch_count", torch.zeros(()))
        # Row 0: epoch t-2, row 1: epoch t-1; epochs_seen counts how many rows are valid.
        self.register_buffer("epoch_means", torch.ones(2, n))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> Tensor:
        ratio = self.epoch_means[1] / self.epoch_means[0]
        dynamic = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)
        # torch.where instead of an if: deciding on the host would read the count back.
        return torch.where(self.epochs_seen >= 2, dynamic, torch.ones_like(dynamic))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        self.loss_sum += values.detach()
        self.batch_count += 1
        return (self.current_weights() * values).sum()

    def on_train_epoch_end(self) -> None:
        sums = all_reduce_sum(torch.cat([self.loss_sum, self.batch_count[None]]))
        means = sums[:-1] / sums[-1].clamp(min=1)
        seen = sums[-1] > 0
        self.epoch_means.copy_(
            torch.where(seen, torch.stack([self.epoch_means[1], means]), self.epoch_means)
        )
        self.epochs_seen += seen.long()
        self.loss_sum.zero_()
        self.batch_count.zero_()

    def record_epoch(self, means: Tensor) -> None:
        """Push one epoch's mean losses into the history (what an epoch end does)."""
        self.epoch_means.copy_(torch.stack([self.epoch_means[1], means]))
        self.epochs_seen += 1

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.current_weights())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


__all__ = ["DWAWeighting"]
