"""Instance head: per-pixel (dy, dx) vector to the instance centroid, L1 over instance pixels."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from torchmetrics import Metric

from mtlscene.metrics.offset import OffsetError
from mtlscene.tasks.base import TaskHead, masked_l1
from mtlscene.tasks.kinds import HeadKind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.table_metric import TableMetric


@register_task("instance")
class InstanceHead(TaskHead):
    """Regresses, for every pixel of an object instance, the vector to its centroid.

    The loss is the paper's ``mean over instance pixels of ||x_n - x_hat_n||_1`` in pixels
    at the working resolution. Gaussian likelihood as in the paper; ``laplace`` selectable.
    With ``aleatoric: true`` one log-scale per pixel is shared by both components.
    """

    default_likelihood = Likelihood.GAUSSIAN
    batch_keys = ("instance_offset", "instance_mask")
    monitor_metric = "mae"
    monitor_mode = "min"
    target_mask_key = "instance_mask"
    out_channels = 2
    output_kind = HeadKind.CENTROID_VECTORS
    # The paper's Table 1 column, plus AP (from clustering), which Δm leaves out.
    table_metrics = (
        TableMetric("mae", "Instance err px", higher_is_better=False, digits=3),
        TableMetric("ap", "AP %", higher_is_better=True, scale=100.0, in_delta=False),
    )

    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return masked_l1(prediction.float(), batch["instance_offset"], batch["instance_mask"])

    def pixel_residuals(self, prediction: Tensor, batch: Mapping[str, Tensor]):
        # Aleatoric: one s per pixel shared by dy and dx (an isotropic 2-D residual, D = 2 in
        # the NLL), so sigma is the spread of each component and the L1 norm stays the loss.
        residual = prediction.float() - batch["instance_offset"].float()
        return residual, batch["instance_mask"].bool()

    def make_metrics(self) -> Metric:
        return OffsetError()

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction, batch["instance_offset"], batch["instance_mask"])
