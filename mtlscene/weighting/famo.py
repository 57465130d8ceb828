"""FAMO: Fast Adaptive Multitask Optimization (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_mean


class FAMOWeighting(LossWeighting):
    """Decreases every task's loss at about the same rate, from loss values alone.

    FAMO's objective is ``c sum_i z_i log(L_i - b_i + eps)`` with ``z = softmax(w)`` and
    ``c = 1 / sum_i (z_i / (L_i - b_i + eps))`` (constant), whose gradient is the convex
    combination ``sum_i (c z_i / (L_i - b_i + eps)) grad L_i``. Those are the reported weights,
    and the returned objective is ``sum_i w_i L_i`` with them held constant (same gradient;
    its value is the weighted loss, not the log objective).
    The logits ``w`` follow the log-loss decrease ``delta_i = log L_i(before) - log L_i(after)``
    with one Adam step on ``grad_w = J_softmax(w)^T delta`` (plus ``weight_decay * w``).

    Unlike the paper, which runs an extra forward pass after each step to measure the losses
    of the same batch "after", this uses the next step's losses (a different batch) as
    "after": no extra forward, at the price of batch noise in ``delta``. The losses entering
    the update are averaged over DDP processes, so the logits are identical on every rank;
    logits and Adam moments are buffers, saved in checkpoints, and stepped here, never by the
    model's optimizer.

    Args:
        lr: Adam learning rate of the logits (the paper: 0.025).
        weight_decay: L2 coefficient on the logits (the paper: 1e-3).
        min_losses: lower bound ``b_i`` per task (default 0: losses must be positive).
        betas: Adam's moment decay rates.
        eps: added inside the logarithm.
    """

    def __init__(
        self,
        lr: float = 0.025,
        weight_decay: float = 1e-3,
        min_losses: Mapping[str, float] | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if lr < 0 or weight_decay < 0:
            raise ValueError(
                f"FAMOWeighting lr and weight_decay must be >= 0, got {lr}, {weight_decay}"
            )
        self.logit_lr = lr
        self.weight_decay = weight_decay
        self.min_losses_config = dict(min_losses or {})
        self.betas = tuple(betas)
        self.eps = eps

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        unknown = sorted(set(self.min_losses_config) - set(self.likelihoods))
        if unknown:
            raise ValueError(f"FAMOWeighting.min_losses names unknown tasks {unknown}")
        n = len(self.likelihoods)
        bounds = [float(self.min_losses_config.get(name, 0.0)) for name in self.likelihoods]
        self.register_buffer("min_losses", torch.tensor(bounds))
        self.register_buffer("logits", torch.zeros(n))
        self.register_buffer("adam_m", torch.zeros(n))
        self.register_buffer("adam_v", torch.zeros(n))
        self.register_buffer("adam_step", torch.zeros(()))
        self.register_buffer("previous_losses", torch.ones(n))
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))
        self.register_buffer("last_weights", torch.full((n,), 1.0 / n))

    def update(self, before: Tensor, after: Tensor) -> None:
        """One Adam step of the logits from the losses before and after a model update."""
        delta = torch.log(before - self.min_losses + self.eps) - torch.log(
            after - self.min_losses + self.eps
        )
        z = torch.softmax(self.logits, dim=0)
        # Vector-Jacobian product of softmax: (diag(z) - z z^T) delta.
        grad = z * (delta - (z * delta).sum()) + self.weight_decay * self.logits
        beta1, beta2 = self.betas
        self.adam_step += 1
        self.adam_m.mul_(beta1).add_((1 - beta1) * grad)
        self.adam_v.mul_(beta2).add_((1 - beta2) * grad * grad)
        m_hat = self.adam_m / (1 - beta1**self.adam_step)
        v_hat = self.adam_v / (1 - beta2**self.adam_step)
        self.logits -= self.logit_lr * m_hat / (v_hat.sqrt() + 1e-8)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        values = stack_losses(self, losses)
        current = all_reduce_mean(values.detach())
        if self.training:
            # The first step has no "before": run the update on a copy and keep the old state
            # (torch.where, not an if, so the flag is never read back to the host).
            state = [self.logits, self.adam_m, self.adam_v, self.adam_step]
            old = [t.clone() for t in state]
            self.update(self.previous_losses, current)
            for tensor, saved in zip(state, old, strict=True):
                tensor.copy_(torch.where(self.has_previous, tensor, saved))
            self.previous_losses.copy_(current)
            self.has_previous.fill_(True)
        # Weights from the rank-averaged losses: each rank's sum_i w_i L_i, averaged by DDP,
        # then has the gradient of FAMO's objective on the whole (all-rank) batch.
        shifted = current - self.min_losses + self.eps
        z = torch.softmax(self.logits, dim=0)
        weights = (z / shifted) / (z / shifted).sum()
        self.last_weights.copy_(weights)
        return (weights * values).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)


__all__ = ["FAMOWeighting"]
