"""Metric depth errors of the NYUv2 protocol: absolute and relative error over valid pixels."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.averaging import check_metric_average
from mtlscene.metrics.masked_pairs import masked_pairs


class MetricDepthMetrics(Metric):
    """Mean absolute error ``|d - d*|`` and mean relative error ``|d - d*| / d*``.

    Both are over the pixels the mask marks valid (NYUv2: ground-truth depth > 0, so the
    relative error is defined everywhere it is counted). With ``average="pixel"`` (default)
    they are over all valid pixels of the split, from float64 sums and a long count summed
    across processes, so the result under DDP is exact. With ``average="batch"`` each
    ``update`` (one batch) contributes its own means, averaged over batches in ``compute``:
    the convention of the published NYUv2 code (see `mtlscene.metrics.averaging`).

    ``compute()`` returns ``abs_err`` (in the depth's unit, metres on NYUv2) and ``rel_err``
    (a ratio); nan before any valid pixel.

    Args:
        average: "pixel" or "batch".
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    sums: Tensor
    count: Tensor

    def __init__(self, average: str = "pixel", **kwargs) -> None:
        super().__init__(**kwargs)
        self.average = check_metric_average(average, "MetricDepthMetrics.average")
        # [abs_err, rel_err] sums: over pixels ("pixel") or of per-batch means ("batch");
        # count: valid pixels or batches.
        self.add_state("sums", default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: Predicted depth, BxHxW or Bx1xHxW.
            target: Ground-truth depth, BxHxW (positive where ``mask`` is set).
            mask: Valid ground-truth pixels, bool BxHxW.
        """
        pred, target = masked_pairs(pred, target, mask)
        error = (pred - target).abs()
        sums = torch.stack([error.sum(), (error / target).sum()])
        if self.average == "pixel":
            self.sums += sums
            self.count += error.numel()
        elif error.numel():  # a batch without valid pixels has no mean: skipped
            self.sums += sums / error.numel()
            self.count += 1

    def compute(self) -> dict[str, Tensor]:
        """``abs_err`` and ``rel_err`` as float32 tensors (nan before any valid pixel)."""
        values = self.sums / self.count.double()  # 0 / 0 = nan
        return {"abs_err": values[0].float(), "rel_err": values[1].float()}
