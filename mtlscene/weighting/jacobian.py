"""Jacobian descent inside an ordinary training step: per-task gradients -> one update.

The gradient-based methods (MGDA, PCGrad, CAGrad, Nash-MTL, IMTL-G, Aligned-MTL, UPGrad) turn
the Jacobian ``J`` of the task losses with respect to the shared parameters into one update
``J^T w``. TorchJD's weightings compute ``w``; this module computes ``J`` with one backward
pass per task, averages it over DDP processes (so every rank computes the same ``w``), and
returns a *surrogate* objective whose gradient is exactly the wanted update: ``J^T w`` for
the shared parameters and each task's own gradient for its head (as TorchJD's
``mtl_backward`` does). The trainer's usual backward, gradient clipping, optimizer and
scheduler then run unchanged, and DDP averages the surrogate's gradients as usual.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_mean


class JacobianWeighting(LossWeighting):
    """Base of the methods that weigh per-task gradients of the shared parameters.

    Subclasses implement :meth:`jacobian_weights`. The value of the returned objective is
    ``sum_i w_i L_i`` (what gets logged as the total loss); its gradient is the aggregated
    update. Costs one backward pass per task (the equal-weighting step needs one in all).
    """

    requires_gradients = True

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        self.register_buffer("last_weights", torch.full((n,), 1.0 / n), persistent=False)
        # J J^T of the last step's (DDP-averaged) per-task gradients of the shared
        # parameters: norms and cosines for gradient diagnostics without another backward.
        self.register_buffer("last_gramian", torch.zeros(n, n), persistent=False)

    def check_trainer_options(self, accumulate_grad_batches: int) -> None:
        if accumulate_grad_batches > 1:
            raise ValueError(
                f"{type(self).__name__} aggregates the per-task gradients of one batch; "
                f"trainer.accumulate_grad_batches={accumulate_grad_batches} would aggregate each "
                "micro-batch on its own. Set trainer.accumulate_grad_batches to 1 (raise "
                "data.batch_size instead) or use a loss-based weighting."
            )

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        raise ValueError(
            f"{type(self).__name__} needs per-task gradients: call it with shared= and heads="
        )

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        """The weight vector ``w`` (one per task) for the float32 Jacobian, tasks x params."""
        raise NotImplementedError

    def combine_gradients(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        present: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        values = stack_losses(self, losses)
        surrogate = self.aggregate(values, shared, heads)
        weighted = (self.last_weights * values.detach()).sum()
        # Value of the weighted loss sum, gradient of the surrogate.
        return weighted + (surrogate - surrogate.detach())

    def aggregate(self, values: Tensor, shared: nn.Module, heads: Mapping[str, nn.Module]):
        """A surrogate whose gradient is the aggregated update of the per-task ``values``.

        Shared parameters get ``w @ J`` (``w`` from :meth:`jacobian_weights`, kept in
        ``last_weights``); each head gets its own task's gradient, unweighted. The
        surrogate's value is meaningless: add ``surrogate - surrogate.detach()``.
        """
        shared_params = [p for p in shared.parameters() if p.requires_grad]
        rows, surrogate = [], values.new_zeros(())
        for i, name in enumerate(self.tasks):
            own = [p for p in heads[name].parameters() if p.requires_grad]
            grads = torch.autograd.grad(
                values[i],
                shared_params + own,
                retain_graph=i < len(self.tasks) - 1,  # the last pass frees the graph
                allow_unused=True,
            )
            rows.append(_flatten(grads[: len(shared_params)], shared_params))
            # A head's parameters get their own task's gradient, unweighted.
            for param, grad in zip(own, grads[len(shared_params) :], strict=True):
                if grad is not None:
                    surrogate = surrogate + (param * grad).sum()
        jacobian = all_reduce_mean(torch.stack(rows))
        self.last_gramian.copy_(jacobian @ jacobian.T)
        weights = self.jacobian_weights(jacobian).to(jacobian.dtype)
        self.last_weights.copy_(weights)
        update = weights @ jacobian
        offset = 0
        for param in shared_params:
            size = param.numel()
            surrogate = surrogate + (param * update[offset : offset + size].view_as(param)).sum()
            offset += size
        return surrogate

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)


class GramianJacobianWeighting(JacobianWeighting):
    """A method whose weights depend on the Gramian ``J J^T`` only (a TorchJD weighting).

    Args:
        weighting: the TorchJD ``Weighting`` mapping a Gramian to weights.
    """

    def __init__(self, weighting: nn.Module) -> None:
        super().__init__()
        self.gramian_weighting = weighting

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        return self.gramian_weighting(jacobian @ jacobian.T)


def _flatten(grads, params) -> Tensor:
    parts = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1)
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts).float()


__all__ = ["GramianJacobianWeighting", "JacobianWeighting"]
