"""Per-task gradient statistics at the shared parameters: norms, cosines, magnitude ratios.

Everything follows from the Gramian ``G = J J^T`` of the per-task gradients (``J``: tasks x
shared parameters, one row per task): ``||g_i|| = sqrt(G_ii)``, ``cos(g_i, g_j) = G_ij /
(||g_i|| ||g_j||)``. A task whose gradient is zero (e.g. no target in the batch, so its loss is
zeroed) has no direction: its cosines and ratios are NaN, never a division by zero. All
functions stay on the tensors' device, so callers decide when to read values back.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def gramian(gradients: Tensor) -> Tensor:
    """``J J^T`` (float32, tasks x tasks) of per-task gradient rows (tasks x parameters)."""
    rows = gradients.float()
    return rows @ rows.T


def per_task_gradients(
    losses: Sequence[Tensor], params: Sequence[Tensor]
) -> list[list[Tensor | None]]:
    """One ``torch.autograd.grad`` per loss (graph retained, ``.grad`` untouched); None where
    a loss does not reach a parameter (or has no graph at all)."""
    grads = []
    for loss in losses:
        if loss.requires_grad:
            grads.append(
                list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))
            )
        else:  # e.g. a constant zero loss: nothing to differentiate
            grads.append([None] * len(params))
    return grads


def task_gradients(losses: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """Per-task gradients of ``losses`` w.r.t. ``params``, flattened: tasks x parameters.

    One ``torch.autograd.grad`` per task with ``retain_graph=True``, so the caller's own
    backward can follow; ``.grad`` of the parameters is left untouched. A parameter a loss
    does not reach (or a loss without a graph) contributes zeros.

    Args:
        losses: one scalar loss per task.
        params: the parameters (typically the shared encoder's trainable ones).
    """
    params = list(params)
    rows = [
        torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                for g, p in zip(task, params, strict=True)
            ]
        )
        for task in per_task_gradients(losses, params)
    ]
    return torch.stack(rows)


def task_gradient_gramian(losses: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """The Gramian ``J J^T`` of the per-task gradients of ``losses`` w.r.t. ``params`` (as
    `gramian` of `task_gradients`): one backward per task, ``.grad`` untouched.

    Accumulated parameter by parameter, without building the tasks x parameters matrix:
    flattening and concatenating the gradients cost more than the products themselves.
    """
    params = list(params)
    grads = per_task_gradients(losses, params)
    count = len(grads)
    device = params[0].device if params else torch.device("cpu")
    gram = torch.zeros(count, count, device=device)
    for i, j in itertools.combinations_with_replacement(range(count), 2):
        products = [
            torch.vdot(a.reshape(-1).float(), b.reshape(-1).float())
            for a, b in zip(grads[i], grads[j], strict=True)
            if a is not None and b is not None
        ]
        if products:
            # On the device: no read-back.
            gram[i, j] = gram[j, i] = torch.stack(products).sum()
    return gram


def gradient_norms(gram: Tensor) -> Tensor:
    """Per-task gradient norms ``sqrt(G_ii)`` (tiny negative round-off clamped to 0)."""
    return torch.diagonal(gram).clamp(min=0).sqrt()


def cosine_matrix(gram: Tensor) -> Tensor:
    """Pairwise cosine similarities; NaN where either gradient is zero."""
    norms = gradient_norms(gram)
    scale = norms[:, None] * norms[None, :]
    cosine = (gram / scale.clamp(min=torch.finfo(gram.dtype).tiny)).clamp(-1.0, 1.0)
    return torch.where(scale > 0, cosine, torch.full_like(cosine, float("nan")))


def ratio_matrix(gram: Tensor) -> Tensor:
    """``||g_i|| / ||g_j||`` for every pair; NaN where either gradient is zero."""
    norms = gradient_norms(gram)
    ratio = norms[:, None] / norms[None, :].clamp(min=torch.finfo(gram.dtype).tiny)
    defined = (norms[:, None] > 0) & (norms[None, :] > 0)
    return torch.where(defined, ratio, torch.full_like(ratio, float("nan")))


def task_pairs(tasks: Sequence[str]) -> list[tuple[str, str]]:
    """Unordered task pairs in the tasks' order: (a, b) with a before b."""
    return list(itertools.combinations(tasks, 2))


@dataclass
class GradientStats:
    """Statistics of one step's per-task gradients (tensors on the Gramian's device).

    Attributes:
        tasks: task names, in the Gramian's order.
        norms: per task gradient norm, shape (tasks,).
        pairs: the task pairs ``(a, b)``, see `task_pairs`.
        cosine: per pair ``cos(g_a, g_b)``, shape (pairs,); NaN when undefined.
        ratio: per pair ``||g_a|| / ||g_b||``, shape (pairs,); NaN when undefined.
    """

    tasks: list[str]
    norms: Tensor
    pairs: list[tuple[str, str]]
    cosine: Tensor
    ratio: Tensor

    @property
    def conflict(self) -> Tensor:
        """Per pair, whether the gradients conflict (``cos < 0``; False when undefined)."""
        return self.cosine < 0


def gradient_stats(gram: Tensor, tasks: Sequence[str]) -> GradientStats:
    """Norms, and per pair cosine and magnitude ratio, from a Gramian ``J J^T``."""
    tasks = list(tasks)
    if gram.shape != (len(tasks), len(tasks)):
        raise ValueError(f"Gramian of shape {tuple(gram.shape)} for {len(tasks)} tasks {tasks}")
    pairs = task_pairs(tasks)
    rows = torch.tensor([tasks.index(a) for a, _ in pairs], dtype=torch.long, device=gram.device)
    cols = torch.tensor([tasks.index(b) for _, b in pairs], dtype=torch.long, device=gram.device)
    gram = gram.float()
    return GradientStats(
        tasks=tasks,
        norms=gradient_norms(gram),
        pairs=pairs,
        cosine=cosine_matrix(gram)[rows, cols],
        ratio=ratio_matrix(gram)[rows, cols],
    )


__all__ = [
    "GradientStats",
    "cosine_matrix",
    "gradient_norms",
    "gradient_stats",
    "gramian",
    "ratio_matrix",
    "per_task_gradients",
    "task_gradient_gramian",
    "task_gradients",
    "task_pairs",
]
