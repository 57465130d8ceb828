"""Disparity (inverse depth) error metrics in pixels."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.masked_pairs import masked_pairs

RELATIVE_MIN_DISPARITY = 1e-3
"""Ground-truth disparity at or below this (points at infinity) has no relative error."""


class DisparityMetrics(Metric):
    """Mean absolute, RMS and relative disparity error over valid pixels.

    ``compute()`` returns:

    - ``mae``: mean ``|d - d^|`` in pixels (the paper's "Inverse Depth Mean Error [px]").
    - ``rmse``: ``sqrt(mean (d - d^)^2)`` in pixels (the paper's "RMS Error [px]").
    - ``rel``: mean ``|d - d^| / d`` over valid pixels with ``d > 1e-3`` only, because the
      relative error of points at infinity (``d == 0``, e.g. sky) is undefined.

    Sums are float64 and summed across processes, so the result is exact under DDP. A value is
    nan when no pixel contributed to it.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    abs_error_sum: Tensor
    squared_error_sum: Tensor
    pixel_count: Tensor
    relative_error_sum: Tensor
    relative_pixel_count: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("abs_error_sum", "squared_error_sum", "relative_error_sum"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        for name in ("pixel_count", "relative_pixel_count"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: Predicted disparity in pixels, BxHxW or Bx1xHxW.
            target: Ground-truth disparity in pixels, BxHxW.
            mask: Valid ground-truth pixels, bool BxHxW.
        """
        pred, target = masked_pairs(pred, target, mask)
        error = (pred - target).abs()
        self.abs_error_sum += error.sum()
        self.squared_error_sum += error.square().sum()
        self.pixel_count += error.numel()
        positive = target > RELATIVE_MIN_DISPARITY
        self.relative_error_sum += (error[positive] / target[positive]).sum()
        self.relative_pixel_count += positive.sum()

    def compute(self) -> dict[str, Tensor]:
        """``mae``, ``rmse`` and ``rel`` (float32 tensors; nan where nothing was accumulated)."""
        count = self.pixel_count.double()
        relative_count = self.relative_pixel_count.double()
        nan = torch.tensor(torch.nan, dtype=torch.float64, device=count.device)
        results = {
            "mae": self.abs_error_sum / count if count > 0 else nan,
            "rmse": (self.squared_error_sum / count).sqrt() if count > 0 else nan,
            "rel": self.relative_error_sum / relative_count if relative_count > 0 else nan,
        }
        return {key: value.float() for key, value in results.items()}
