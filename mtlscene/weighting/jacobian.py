"""Jacobian descent inside an ordinary training step: per-task gradients -> one update.

The gradient-based methods (MGDA, PCGrad, CAGrad, Nash-MTL, IMTL-G, Aligned-MTL, UPGrad) turn
the Jacobian ``J`` of the task losses with respect to the shared parameters into one update
``J^T w``. TorchJD's weightings compute ``w``; this module computes ``J`` with one backward
pass per task, averages it over DDP processes (so every rank computes the same ``w``), and
returns a *surrogate* objective whose gradient is exactly the wanted update: ``J^T w`` for
the shared parameters and each task's own gradient for its head (as TorchJD's
``mtl_backward`` does). The trainer's usual backward, gradient clipping, optimizer and
scheduler then run unchanged, and DDP averages the surrogate's gradients as usual.

With ``rep_grad=True`` the Jacobian is taken with respect to the shared *representation*
(the encoder's output features) instead, as MGDA-UB (Sener & Koltun, 2018) and LibMTL's
``rep_grad`` do: one backward per task through its head only, then one backward through the
encoder with the aggregated representation gradient (the trainer's usual backward of the
surrogate). The parameter-level Jacobian is the representation-level one times the
encoder's Jacobian, so the two give the same update only when the latter has orthonormal
rows; docs/weighting.md says what the approximation means for each method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, task_values
from mtlscene.weighting.distributed import all_reduce_mean, all_reduce_sum, world_size


class JacobianWeighting(LossWeighting):
    """Base of the methods that weigh per-task gradients of the shared parameters.

    Subclasses implement `jacobian_weights`. The value of the returned objective is
    ``sum_i w_i L_i`` (what gets logged as the total loss); its gradient is the aggregated
    update. Costs one backward pass per task (the equal-weighting step needs one in all).

    Args:
        rep_grad: take the task gradients with respect to the shared representation (the
            encoder's output) rather than the shared parameters: one backward per task
            through its head, then one through the encoder. Cheaper, an approximation (see
            the module docstring); needs ``representation=`` in the call.
    """

    requires_gradients = True

    def __init__(self, rep_grad: bool = False) -> None:
        super().__init__()
        self.rep_grad = rep_grad

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        self.register_buffer("last_weights", torch.full((n,), 1.0 / n), persistent=False)
        # J J^T of the last step's (DDP-averaged) per-task gradients of the shared
        # parameters (of the representation with rep_grad): norms and cosines for gradient
        # diagnostics without another backward.
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

    def gramian_weights(self, gramian: Tensor) -> Tensor:
        """The weight vector ``w`` from the Gramian ``J J^T`` alone.

        Every method here depends on ``J`` only through ``J J^T``, so this default passes
        `jacobian_weights` a tasks x tasks factor ``R`` with ``R R^T = J J^T``. Used
        under DDP with ``rep_grad``, where ranks' representations differ and only their
        Gramians can be summed.
        """
        eigenvalues, eigenvectors = torch.linalg.eigh(gramian)
        return self.jacobian_weights(eigenvectors * eigenvalues.clamp(min=0).sqrt())

    def combine_gradients(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        present: Mapping[str, Tensor] | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        values = task_values(self, losses)
        surrogate = self.aggregate(values, shared, heads, representation)
        weighted = (self.last_weights * torch.stack(values).detach()).sum()
        # Value of the weighted loss sum, gradient of the surrogate.
        return weighted + (surrogate - surrogate.detach())

    def aggregate(
        self,
        values: Sequence[Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        representation: Tensor | None = None,
    ) -> Tensor:
        """A surrogate whose gradient is the aggregated update of the per-task ``values``.

        Shared parameters get ``w @ J`` (``w`` from `jacobian_weights`, kept in
        ``last_weights``); each head gets its own task's gradient, unweighted. The
        surrogate's value is meaningless: add ``surrogate - surrogate.detach()``.

        Args:
            values: one scalar loss per task, in task order (separate tensors, not slices of
                a stacked one: a slice's backward would run through every task's head).
            shared: the shared encoder.
            heads: task -> head (its parameters are that task's own).
            representation: the shared encoder's output, when ``rep_grad``.
        """
        if self.rep_grad:
            return self._aggregate_representation(values, heads, representation)
        shared_params = [p for p in shared.parameters() if p.requires_grad]
        rows, surrogate = [], values[0].new_zeros(())
        for i, name in enumerate(self.tasks):
            own = [p for p in heads[name].parameters() if p.requires_grad]
            grads = torch.autograd.grad(
                values[i],
                shared_params + own,
                retain_graph=i < len(self.tasks) - 1,  # the last pass frees the graph
                allow_unused=True,
            )
            rows.append(_flatten(grads[: len(shared_params)], shared_params))
            surrogate = _add_own_gradients(surrogate, own, grads[len(shared_params) :])
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

    def _aggregate_representation(
        self, values: Sequence[Tensor], heads: Mapping[str, nn.Module], representation
    ) -> Tensor:
        """`aggregate` with the Jacobian of the representation (``rep_grad``)."""
        if not isinstance(representation, Tensor) or not representation.requires_grad:
            raise ValueError(
                f"{type(self).__name__}(rep_grad=True) needs the shared representation: call "
                "it with representation= (the encoder's output, in the graph of the losses; "
                "MultiTaskModule passes it), or set rep_grad: false"
            )
        rows, surrogate = [], values[0].new_zeros(())
        for i, name in enumerate(self.tasks):
            own = [p for p in heads[name].parameters() if p.requires_grad]
            # Stops at the representation: only this task's head is traversed. The encoder's
            # part of the graph stays for the one backward of the surrogate.
            grads = torch.autograd.grad(
                values[i],
                [representation, *own],
                retain_graph=i < len(self.tasks) - 1,
                allow_unused=True,
            )
            rows.append(_flatten(grads[:1], [representation]))
            surrogate = _add_own_gradients(surrogate, own, grads[1:])
        jacobian = torch.stack(rows)  # tasks x numel(representation), this rank's batch
        size = world_size()
        if size == 1:
            self.last_gramian.copy_(jacobian @ jacobian.T)
            weights = self.jacobian_weights(jacobian)
        else:
            # Ranks hold different samples: the whole batch's Jacobian is the ranks' ones side
            # by side (each / size, the loss being a mean over ranks), whose Gramian is the
            # sum of theirs / size^2. Each rank then applies w to its own part; DDP's mean of
            # the encoder gradients completes the whole batch's update.
            gramian = all_reduce_sum(jacobian @ jacobian.T) / size**2
            self.last_gramian.copy_(gramian)
            weights = self.gramian_weights(gramian)
        weights = weights.to(jacobian.dtype)
        self.last_weights.copy_(weights)
        update = (weights @ jacobian).view_as(representation).to(representation.dtype)
        # The trainer's backward of this term is the one pass through the encoder.
        return surrogate + (representation * update).sum()

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.last_weights)


class GramianJacobianWeighting(JacobianWeighting):
    """A method whose weights depend on the Gramian ``J J^T`` only (a TorchJD weighting).

    Args:
        weighting: the TorchJD ``Weighting`` mapping a Gramian to weights.
        rep_grad: see `JacobianWeighting`.
    """

    def __init__(self, weighting: nn.Module, rep_grad: bool = False) -> None:
        super().__init__(rep_grad=rep_grad)
        self.gramian_weighting = weighting

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        return self.gramian_weights(jacobian @ jacobian.T)

    def gramian_weights(self, gramian: Tensor) -> Tensor:
        return self.gramian_weighting(gramian)


def _add_own_gradients(
    surrogate: Tensor, params: Sequence[Tensor], grads: Sequence[Tensor | None]
) -> Tensor:
    """``surrogate`` plus terms giving a head's parameters their own task's gradient, unweighted."""
    for param, grad in zip(params, grads, strict=True):
        if grad is not None:
            surrogate = surrogate + (param * grad).sum()
    return surrogate


def _flatten(grads, params) -> Tensor:
    parts = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1)
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts).float()


__all__ = ["GramianJacobianWeighting", "JacobianWeighting"]
