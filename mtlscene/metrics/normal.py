"""Surface normal metrics: angular error in degrees, its median and the shares within 11.25/22.5/30.

The NYUv2 protocol (Eigen & Fergus 2015, as reported by mtan, nash-mtl, FAMO and LibMTL).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.averaging import check_metric_average

THRESHOLDS: dict[str, float] = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}
"""Share-of-pixels metrics and their angle thresholds in degrees (strictly below)."""

HISTOGRAM_BIN_DEGREES = 0.005
"""Width of the median's histogram bins: the median is exact to within this (< 0.01 degree)."""

NUM_BINS = round(180.0 / HISTOGRAM_BIN_DEGREES)


def angular_error_degrees(pred: Tensor, target: Tensor) -> Tensor:
    """Angle in degrees between the vectors of ``pred`` and ``target`` along dim 1 (float64).

    ``atan2(|a x b|, a . b)`` is accurate at every angle (``acos`` of the dot product loses
    about 0.02 degree near 0 in float32) and needs no normalisation. A zero prediction has no
    direction: it counts as 90 degrees, what the ``1 - cos`` loss reads it as (cos = 0).
    """
    pred, target = pred.double(), target.double()
    dot = (pred * target).sum(dim=1)
    cross = torch.linalg.vector_norm(torch.linalg.cross(pred, target, dim=1), dim=1)
    angle = torch.rad2deg(torch.atan2(cross, dot))
    zero = (pred == 0).all(dim=1)
    return torch.where(zero, torch.full_like(angle, 90.0), angle)


def numpy_style_median(values: Tensor) -> Tensor:
    """The median as numpy computes it (the mean of the two middle values of an even count)."""
    ordered = values.sort().values
    count = ordered.numel()
    return (ordered[(count - 1) // 2] + ordered[count // 2]) / 2


class SurfaceNormalMetrics(Metric):
    """Mean and median angular error (degrees) and the shares of pixels within 11.25/22.5/30.

    With ``average="pixel"`` (default) every value is over all valid pixels of the split:
    the mean and the shares come from float64 sums and long counts, the median from a
    histogram of the angles in bins of 0.005 degree (linearly interpolated within the bin
    that holds the middle rank, so it lies within 0.005 degree of the exact median). All
    states are summed across processes, so the result under DDP equals the result of one
    process that saw every image, and the state stays a fixed 36000 counts however large the
    split is.

    With ``average="batch"`` each ``update`` (one batch) contributes its own mean, exact
    median and shares over its valid pixels, and ``compute`` averages them over batches: the
    convention of the published NYUv2 code (see `mtlscene.metrics.averaging`).

    ``compute()`` returns ``mean_angle``, ``median_angle`` (degrees) and ``within_11_25``,
    ``within_22_5``, ``within_30`` (shares in [0, 1]); all nan before any valid pixel.

    Args:
        average: "pixel" or "batch".
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    angle_sum: Tensor
    pixel_count: Tensor
    histogram: Tensor
    batch_sums: Tensor
    batch_count: Tensor

    def __init__(self, average: str = "pixel", **kwargs) -> None:
        super().__init__(**kwargs)
        self.average = check_metric_average(average, "SurfaceNormalMetrics.average")
        zero64 = torch.tensor(0.0, dtype=torch.float64)
        if average == "pixel":
            self.add_state("angle_sum", default=zero64, dist_reduce_fx="sum")
            self.add_state("pixel_count", default=torch.tensor(0), dist_reduce_fx="sum")
            for name in THRESHOLDS:
                self.add_state(f"{name}_count", default=torch.tensor(0), dist_reduce_fx="sum")
            self.add_state(
                "histogram", default=torch.zeros(NUM_BINS, dtype=torch.long), dist_reduce_fx="sum"
            )
        else:
            # Per batch: [mean, median, *shares] summed over batches, and the batch count.
            self.add_state(
                "batch_sums",
                default=torch.zeros(2 + len(THRESHOLDS), dtype=torch.float64),
                dist_reduce_fx="sum",
            )
            self.add_state("batch_count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: Predicted normals, Bx3xHxW (need not be unit length).
            target: Ground-truth unit normals, Bx3xHxW.
            mask: Valid ground-truth pixels, bool BxHxW.
        """
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be "
                "Bx3xHxW normals"
            )
        if mask.shape != (pred.shape[0], *pred.shape[2:]):
            raise ValueError(f"mask {tuple(mask.shape)} must be BxHxW for pred {tuple(pred.shape)}")
        angle = angular_error_degrees(pred.detach(), target)[mask.bool()]
        if self.average == "batch":
            self._update_batch(angle)
            return
        self.angle_sum += angle.sum()
        self.pixel_count += angle.numel()
        for name, threshold in THRESHOLDS.items():
            count = getattr(self, f"{name}_count") + (angle < threshold).sum()
            setattr(self, f"{name}_count", count)
        bins = (angle / HISTOGRAM_BIN_DEGREES).long().clamp_(0, NUM_BINS - 1)
        self.histogram += torch.bincount(bins, minlength=NUM_BINS)

    def _update_batch(self, angle: Tensor) -> None:
        # A batch without any valid pixel has no mean; published code would divide by zero.
        if angle.numel() == 0:
            return
        shares = [(angle < threshold).double().mean() for threshold in THRESHOLDS.values()]
        self.batch_sums += torch.stack([angle.mean(), numpy_style_median(angle), *shares])
        self.batch_count += 1

    def compute(self) -> dict[str, Tensor]:
        """The five metrics as float32 tensors (nan where nothing was accumulated)."""
        names = ["mean_angle", "median_angle", *THRESHOLDS]
        if self.average == "batch":
            values = self.batch_sums / self.batch_count.double()  # 0/0 = nan before a batch
        else:
            count = self.pixel_count.double()
            shares = [getattr(self, f"{name}_count").double() / count for name in THRESHOLDS]
            median = self._histogram_median()
            values = torch.stack([self.angle_sum / count, median, *shares])
        return {name: value.float() for name, value in zip(names, values, strict=True)}

    def _histogram_median(self) -> Tensor:
        """The numpy-convention median from the histogram: the mean of the two middle ranks,
        each placed uniformly within its bin (error below one bin width)."""
        count = int(self.pixel_count)
        if count == 0:
            return torch.tensor(math.nan, dtype=torch.float64, device=self.histogram.device)
        cumulative = self.histogram.cumsum(0)
        ranks = torch.tensor(
            [(count - 1) // 2, count // 2], device=cumulative.device, dtype=cumulative.dtype
        )
        # The bin holding 0-based rank r is the first whose cumulative count exceeds r.
        bins = torch.searchsorted(cumulative, ranks, right=True)
        before = torch.where(bins > 0, cumulative[(bins - 1).clamp(min=0)], 0)
        within = (ranks - before).double() + 0.5
        fraction = within / self.histogram[bins].double()
        values = (bins.double() + fraction) * HISTOGRAM_BIN_DEGREES
        return values.mean()
