"""Lookahead inter-task affinity (TAG: Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021).

The affinity of task ``i`` onto task ``j`` at a step is how much a step on task ``i``'s
loss alone, applied to the shared parameters only, lowers task ``j``'s loss on the same
batch::

    Z(i -> j) = 1 - L_j(theta_s - eta * u_i) / L_j(theta_s)

Positive: ``i``'s step helps ``j``; negative: it hurts. ``u_i`` is task ``i``'s share of the
update the optimizer takes: its gradient of the shared parameters times the task's current
loss weight ``w_i`` (``w_i g_i`` is what task ``i`` adds to the gradient of the weighted
total), used as it is (a plain gradient step) or preconditioned as Adam would precondition
it (see `AdamPreconditioner`). The weight matters for Adam: its second moment was
accumulated from weighted gradients, so an unweighted ``g_i`` divided by it is a step of
the wrong size (``1 / w_i`` times too long). Task heads are left as they are. Plain torch:
no Lightning here (the callback ``mtlscene.callbacks.task_affinity`` drives it in a fit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from mtlscene.relationships.gradient_stats import per_task_gradients

# (parameter, task gradient) -> the update direction u (the step is -lr * u).
Preconditioner = Callable[[nn.Parameter, Tensor], Tensor]


class AdamPreconditioner:
    """Adam's per-coordinate scaling of a task gradient: ``g / (sqrt(v_hat) + eps)``.

    TAG takes the optimizer's own update for the lookahead. We take Adam's second-moment
    scaling of the task's gradient, as Adam would apply it were ``g`` this step's gradient
    (``v' = beta2 v + (1 - beta2) g^2``, bias-corrected with the next step count), but not
    its first moment: momentum would blend in every task's past gradients, and the
    lookahead is meant to isolate task ``i``. Weight decay is left out too: it moves the
    parameters the same way whichever task stepped. Before the optimizer's first step
    ``v = 0`` and this is Adam's first update, about ``sign(g)``.

    Args:
        optimizer: the optimizer; its state (``exp_avg_sq``, ``step``) is read, never written.
        group: the parameter group holding the shared parameters (``betas``, ``eps``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, group: Mapping) -> None:
        self.optimizer = optimizer
        self.beta2 = float(group["betas"][1])
        self.eps = float(group["eps"])

    def __call__(self, param: nn.Parameter, grad: Tensor) -> Tensor:
        state = self.optimizer.state.get(param, {})
        exp_avg_sq = state.get("exp_avg_sq")
        step = float(state.get("step", 0))
        squared = (1.0 - self.beta2) * grad * grad
        v = squared if exp_avg_sq is None else self.beta2 * exp_avg_sq + squared
        v_hat = v / (1.0 - self.beta2 ** (step + 1.0))
        return grad / (v_hat.sqrt() + self.eps)


def optimizer_lookahead(
    optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], step: str = "optimizer"
) -> tuple[float, Preconditioner | None, str]:
    """The learning rate, the preconditioner and its name for a step on ``params``.

    The learning rate is the current one of the group holding the first of ``params`` (the
    network's group; a scheduler has already set this step's value).

    Args:
        optimizer: the training optimizer.
        params: the shared parameters.
        step: "sgd" (a plain gradient step), "adam" (`AdamPreconditioner`; the
            optimizer must be Adam-like: Adam, AdamW, or any whose state has
            ``exp_avg_sq`` and whose group has ``betas`` and ``eps``) or "optimizer"
            (Adam's for Adam-like optimizers, else a plain gradient step).
    """
    if not params:
        raise ValueError("lookahead affinity needs at least one shared parameter")
    first = params[0]
    group = next((g for g in optimizer.param_groups if any(p is first for p in g["params"])), None)
    if group is None:
        raise ValueError(
            "the shared parameters are in none of the optimizer's parameter groups; "
            "the lookahead needs the learning rate of their group"
        )
    if step not in ("sgd", "adam", "optimizer"):
        raise ValueError(f"lookahead step must be 'sgd', 'adam' or 'optimizer', got {step!r}")
    adam_like = isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW) or (
        "betas" in group and any("exp_avg_sq" in optimizer.state.get(p, {}) for p in params)
    )
    adam_like = adam_like and "betas" in group and "eps" in group
    if step == "adam" and not adam_like:
        raise ValueError(
            f"the Adam lookahead (step: adam) needs an Adam-like optimizer (Adam, AdamW), "
            f"but the optimizer is {type(optimizer).__name__}; use step: sgd"
        )
    if adam_like and step != "sgd":
        return float(group["lr"]), AdamPreconditioner(optimizer, group), "adam"
    return float(group["lr"]), None, "sgd"


def task_gradients(
    losses: Mapping[str, Tensor], params: Sequence[nn.Parameter]
) -> dict[str, list[Tensor]]:
    """Each task's gradient of ``params`` (zeros where a task does not reach a parameter).

    `per_task_gradients`: one
    ``torch.autograd.grad`` per task, nothing accumulated in ``.grad``.
    """
    params = list(params)
    grads = per_task_gradients(list(losses.values()), params)
    return {
        name: [torch.zeros_like(p) if g is None else g for p, g in zip(params, task, strict=True)]
        for name, task in zip(losses, grads, strict=True)
    }


def lookahead_affinity(
    params: Sequence[nn.Parameter],
    compute_losses: Callable[[], Mapping[str, Tensor]],
    lr: float,
    precondition: Preconditioner | None = None,
    weights: Mapping[str, float] | None = None,
) -> tuple[list[str], Tensor]:
    """The T x T lookahead affinity matrix ``Z[i, j] = Z(i -> j)`` on one batch.

    Task ``i``'s step is ``-lr * u_i`` with ``u_i = precondition(w_i * g_i)`` (or
    ``w_i * g_i`` without a preconditioner): the part of the optimizer's update that task
    ``i``'s term of the weighted total contributes, on the scale the optimizer's state
    was accumulated on.

    Costs T + 1 evaluations of ``compute_losses`` and T backward passes. ``params`` are
    restored exactly (copied back) before returning. Whatever else ``compute_losses``
    changes (BatchNorm running statistics, the random number generators) is the caller's
    to save and restore.

    Args:
        params: the shared parameters the task steps move.
        compute_losses: task name -> scalar loss on the batch, with its graph to ``params``.
        lr: the step size eta.
        precondition: maps a weighted task gradient to the update direction (None: the
            weighted gradient itself).
        weights: task -> its current loss weight ``w_i`` (None, or a task left out: 1).

    Returns:
        The task order and the matrix (rows: the task that stepped; columns: the task whose
        loss is read), float64 on the CPU.
    """
    params = list(params)
    losses = compute_losses()
    tasks = list(losses)
    before = torch.stack([losses[t].detach().double() for t in tasks]).cpu()
    gradients = task_gradients(losses, params)
    del losses
    saved = [p.detach().clone() for p in params]
    matrix = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)
    try:
        for row, task in enumerate(tasks):
            weight = 1.0 if weights is None else float(weights.get(task, 1.0))
            with torch.no_grad():
                for param, grad in zip(params, gradients[task], strict=True):
                    grad = weight * grad
                    update = grad if precondition is None else precondition(param, grad)
                    param.sub_(lr * update)
                after = compute_losses()
                after = torch.stack([after[t].detach().double() for t in tasks]).cpu()
                for param, value in zip(params, saved, strict=True):
                    param.copy_(value)
            matrix[row] = 1.0 - after / before
    finally:
        with torch.no_grad():
            for param, value in zip(params, saved, strict=True):
                param.copy_(value)
    return tasks, matrix
