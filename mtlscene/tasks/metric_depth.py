"""Metric depth head: depth in the data's unit, L1 over valid pixels (the NYUv2 protocol)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.averaging import check_metric_average
from mtlscene.metrics.metric_depth import MetricDepthMetrics
from mtlscene.tasks.base import TaskHead, masked_l1
from mtlscene.tasks.kinds import HeadKind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.table_metric import TableMetric


@register_task("metric_depth")
class MetricDepthHead(TaskHead):
    """Regresses metric depth (metres on NYUv2) with the mean absolute error over valid pixels.

    The loss of mtan and nash-mtl on NYUv2 (L1 on pixels with depth > 0); metrics
    ``abs_err`` and ``rel_err``, both in Δm. Unlike the ``depth`` head (CityScapes disparity)
    it reads ``depth``/``depth_mask``.

    Likelihood: ``gaussian`` by default, as the paper weights its L1 depth loss and as the
    published UW baselines on NYUv2 (mtan, nash-mtl, LibMTL) weight every task
    (``L / (2 sigma^2) + log sigma``), so our UW rows compare like with like. ``laplace``
    (the exact reading of an L1 loss) is selectable.

    Args:
        metric_average: "pixel" (over all valid pixels of the split, exact under DDP) or
            "batch" (per-batch means averaged over batches, as the published code does; see
            `mtlscene.metrics.averaging`).
        **kwargs: see `TaskHead`.
    """

    default_likelihood = Likelihood.GAUSSIAN
    batch_keys = ("depth", "depth_mask")
    target_mask_key = "depth_mask"
    monitor_metric = "abs_err"
    monitor_mode = "min"
    out_channels = 1
    output_kind = HeadKind.METRIC_DEPTH
    table_metrics = (
        TableMetric("abs_err", "Abs err", higher_is_better=False, digits=4),
        TableMetric("rel_err", "Rel err", higher_is_better=False, digits=4),
    )

    def __init__(self, in_channels: int, metric_average: str = "pixel", **kwargs) -> None:
        self.metric_average = check_metric_average(metric_average, "metric_depth.metric_average")
        super().__init__(in_channels, **kwargs)

    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch["depth"].unsqueeze(1).float()
        return masked_l1(prediction.float(), target, batch["depth_mask"])

    def pixel_residuals(self, prediction: Tensor, batch: Mapping[str, Tensor]):
        # Aleatoric: one residual per valid pixel, Laplace by default (the L1 loss's reading).
        target = batch["depth"].unsqueeze(1)
        return prediction.float() - target.float(), batch["depth_mask"].bool()

    def make_metrics(self) -> Metric:
        return MetricDepthMetrics(average=self.metric_average)

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction[:, 0], batch["depth"], batch["depth_mask"])

    def postprocess(self, prediction: Tensor) -> Tensor:
        return prediction[:, 0]
