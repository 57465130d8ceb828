"""Depth head: inverse depth (disparity in pixels), L1 over valid pixels."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.depth import DisparityMetrics
from mtlscene.tasks.base import TaskHead, masked_l1
from mtlscene.tasks.kinds import HeadKind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.table_metric import TableMetric


@register_task("depth")
class DepthHead(TaskHead):
    """Regresses inverse depth, so points at infinity (sky) are 0 rather than unbounded.

    Output is disparity in pixels at the working resolution; the loss is the mean absolute
    error over pixels with a valid disparity measurement. Gaussian likelihood as in the
    paper; ``laplace`` selectable.
    """

    default_likelihood = Likelihood.GAUSSIAN
    batch_keys = ("disparity", "disparity_mask")
    monitor_metric = "mae"
    monitor_mode = "min"
    target_mask_key = "disparity_mask"
    out_channels = 1
    output_kind = HeadKind.DISPARITY
    table_metrics = (TableMetric("mae", "Inv. depth err px", higher_is_better=False, digits=3),)

    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch["disparity"].unsqueeze(1)
        return masked_l1(prediction.float(), target, batch["disparity_mask"])

    def pixel_residuals(self, prediction: Tensor, batch: Mapping[str, Tensor]):
        # Aleatoric: one residual per valid pixel, Laplace by default (the L1 loss's reading).
        target = batch["disparity"].unsqueeze(1)
        return prediction.float() - target.float(), batch["disparity_mask"].bool()

    def make_metrics(self) -> Metric:
        return DisparityMetrics()

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction[:, 0], batch["disparity"], batch["disparity_mask"])

    def postprocess(self, prediction: Tensor) -> Tensor:
        return prediction[:, 0]
