"""A loss weighting composed with a gradient method (as Auto-Lambda and LibMTL combine them).

First the loss weighting scales each task's loss (e.g. uncertainty weighting's
``c * exp(-k s)``), then the gradient method (PCGrad, UPGrad, MGDA, ...) aggregates the
per-task gradients of the *weighted* losses into one update of the shared parameters:

    update_shared = A( [lambda_1 grad L_1, ..., lambda_T grad L_T] ),
    update_head_i = lambda_i grad_head_i L_i,

with the loss weights ``lambda`` detached. The loss weighting's own parameters (uncertainty
weighting's s) learn from its usual objective evaluated on the detached losses, which gives
them exactly the gradient they get alone; that objective is also the logged total. Scale-
invariant aggregators (UPGrad's projections, PCGrad's) then act on gradients whose
magnitudes the loss weighting chose, which is the point of composing them. With the
gradient method's ``rep_grad: true`` the task gradients are taken at the shared
representation instead (see `mtlscene.weighting.jacobian`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, task_values
from mtlscene.weighting.jacobian import JacobianWeighting


class ComposedWeighting(JacobianWeighting):
    """``loss_weighting`` scales the losses, ``gradient_method`` aggregates their gradients.

    Args:
        loss_weighting: a loss-based weighting (one that does not need per-task gradients),
            e.g. ``UncertaintyWeighting``. The exact Boltzmann form (which rescales logits)
            cannot be composed.
        gradient_method: a per-task gradient method (a ``JacobianWeighting``), e.g.
            ``PCGradWeighting`` or ``UPGradWeighting``; its ``rep_grad`` chooses where the
            task gradients are taken.
    """

    def __init__(self, loss_weighting: LossWeighting, gradient_method: JacobianWeighting) -> None:
        super().__init__()
        if loss_weighting.requires_gradients:
            raise ValueError(
                "ComposedWeighting.loss_weighting must be a loss-based weighting, got "
                f"{type(loss_weighting).__name__}, which needs per-task gradients itself; put "
                "gradient methods under gradient_method"
            )
        if not isinstance(gradient_method, JacobianWeighting):
            raise ValueError(
                "ComposedWeighting.gradient_method must be a per-task gradient method (a "
                f"JacobianWeighting such as PCGradWeighting), got {type(gradient_method).__name__}"
            )
        self.loss_weighting = loss_weighting
        self.gradient_method = gradient_method
        self.rep_grad = gradient_method.rep_grad
        self.lr = loss_weighting.lr  # s's own learning rate, when the loss weighting sets one

    def set_per_pixel_tasks(self, tasks) -> None:
        super().set_per_pixel_tasks(tasks)
        self.loss_weighting.set_per_pixel_tasks(self.per_pixel_tasks)
        self.gradient_method.set_per_pixel_tasks(self.per_pixel_tasks)

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        self.loss_weighting.bind(likelihoods)
        self.gradient_method.bind(likelihoods)
        if self.loss_weighting.prediction_scales():
            raise ValueError(
                "ComposedWeighting cannot compose a loss weighting that rescales predictions "
                "(UncertaintyWeighting with boltzmann: exact); use boltzmann: approximate"
            )
        n = len(self.likelihoods)
        self.register_buffer("last_scales", torch.ones(n), persistent=False)

    def is_active(self, task: str) -> bool:
        return self.loss_weighting.is_active(task)

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        return self.gradient_method.jacobian_weights(jacobian)

    def gramian_weights(self, gramian: Tensor) -> Tensor:
        return self.gradient_method.gramian_weights(gramian)

    def loss_scales(self, losses: Mapping[str, Tensor], present) -> tuple[Tensor, Tensor]:
        """The loss weighting's objective on the detached losses, and its weights after it."""
        detached = {name: loss.detach() for name, loss in losses.items()}
        objective = self.loss_weighting(detached, present)
        weights = self.loss_weighting.weights()
        scales = torch.stack([weights[name] for name in self.tasks]).to(objective.device)
        return objective, scales.detach().float()

    def combine_gradients(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        present: Mapping[str, Tensor] | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        objective, scales = self.loss_scales(losses, present)
        self.last_scales.copy_(scales)
        values = [loss * scales[i] for i, loss in enumerate(task_values(self, losses))]
        surrogate = self.aggregate(values, shared, heads, representation)
        # The Gramian of the raw task gradients, as every other gradient method reports it.
        outer = torch.outer(scales, scales)
        self.last_gramian.copy_(torch.where(outer > 0, self.last_gramian / outer, 0.0))
        self.gradient_method.last_weights.copy_(self.last_weights)
        return objective + (surrogate - surrogate.detach())

    def weights(self) -> dict[str, Tensor]:
        """The loss weighting's weights (what its sigmas and the settling check describe).

        The gradient method's combination weights of the scaled gradients are in
        `aggregator_weights`; the update on a raw task gradient is their product.
        """
        return as_dict(self, self.last_scales)

    def aggregator_weights(self) -> dict[str, Tensor]:
        """The gradient method's last weights on the scaled task gradients."""
        return as_dict(self, self.last_weights)

    def log_variances(self) -> dict[str, Tensor]:
        return self.loss_weighting.log_variances()

    def sigmas(self) -> dict[str, Tensor]:
        return self.loss_weighting.sigmas()

    def error_scales(self) -> dict[str, Tensor]:
        return self.loss_weighting.error_scales()


__all__ = ["ComposedWeighting"]
