"""Clamping a learned log-variance without freezing it at a bound."""

from __future__ import annotations

import torch
from torch import Tensor


class _InwardClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: Tensor, low: float, high: float) -> Tensor:
        ctx.save_for_backward(value)
        ctx.bounds = (low, high)
        return value.clamp(low, high)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (value,) = ctx.saved_tensors
        low, high = ctx.bounds
        # A descent step moves value by -grad: block only the pushes further out of bounds.
        outward = ((value <= low) & (grad > 0)) | ((value >= high) & (grad < 0))
        return torch.where(outward, torch.zeros_like(grad), grad), None, None


def clamp_keeping_inward_gradient(value: Tensor, low: float, high: float) -> Tensor:
    """``value.clamp(low, high)`` whose gradient still flows when it points back inside.

    A plain clamp has zero gradient outside its bounds, so a parameter that overshoots a
    bound (e.g. after a large step) would stay there for good. Here the gradient passes
    unchanged inside the bounds and, at or beyond a bound, whenever gradient descent would
    move the value back toward the allowed range; only pushes further out are dropped.
    """
    return _InwardClamp.apply(value, low, high)


__all__ = ["clamp_keeping_inward_gradient"]
