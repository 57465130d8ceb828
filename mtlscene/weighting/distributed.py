"""Averaging across DDP processes for weighting state (plain torch.distributed, no Lightning)."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean of ``tensor`` over all processes (the tensor itself when not distributed).

    Weighting state computed from this mean is identical on every rank, so ranks never
    disagree on the weights. Runs on the device: no host read-back.
    """
    size = world_size()
    if size == 1:
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / size


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over all processes (the tensor itself when not distributed)."""
    if world_size() == 1:
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced
