"""Surface normal head: unit normals, loss 1 - cos over valid pixels (the NYUv2 protocol)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from mtlscene.metrics.averaging import check_metric_average
from mtlscene.metrics.normal import SurfaceNormalMetrics
from mtlscene.tasks.base import TaskHead
from mtlscene.tasks.kinds import HeadKind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.table_metric import TableMetric


def unit_normals(vectors: Tensor) -> Tensor:
    """Bx3xHxW vectors scaled to unit length in float32; zero vectors stay zero (no nan)."""
    return nn.functional.normalize(vectors.float(), dim=1, eps=1e-12)


@register_task("normal")
class SurfaceNormalHead(TaskHead):
    """Predicts a unit surface normal per pixel; loss ``mean over valid pixels of 1 - cos``.

    The output is L2-normalised in ``forward`` (as mtan and the NYUv2 code after it do), so
    ``cos`` is the dot product with the unit target. Metrics: mean and median angular error
    in degrees and the shares within 11.25, 22.5 and 30 degrees, all in Δm (the NYUv2
    protocol).

    Likelihood: ``1 - cos`` of unit vectors is the von Mises-Fisher negative log-likelihood
    on the sphere: with concentration ``kappa`` it is ``kappa (1 - cos) - log kappa`` plus
    terms that vanish as kappa grows. With ``kappa = 1 / sigma^2 = exp(-s)`` that is
    ``exp(-s) L + s``, exactly twice the Gaussian row ``0.5 exp(-s) L + 0.5 s``: the same
    optimum ``s* = log L`` and, near a sharp fit, the Gaussian of the 2-D tangent-plane angle
    (``1 - cos t ~ t^2 / 2``). The factor 2 counts the two tangent dimensions, which the paper
    does not count for its 2-D instance vectors either (one ``log sigma`` per task), so the
    default is ``gaussian``, as for the other regression tasks; the published UW baselines on
    NYUv2 (mtan, nash-mtl, LibMTL) use this form for every task too.

    Per pixel (``aleatoric: true``) the same reading gives ``exp(-s) (1 - cos) + s``, the
    ``laplace`` form of `mtlscene.uncertainty.aleatoric` on ``r = 1 - cos`` (``s* = log r``);
    sigma is then in units of ``1 - cos``.

    Args:
        metric_average: "pixel" (over all valid pixels of the split, exact under DDP) or
            "batch" (per-batch values averaged over batches, as the published code does; see
            `mtlscene.metrics.averaging`).
        **kwargs: see `TaskHead`.
    """

    default_likelihood = Likelihood.GAUSSIAN
    batch_keys = ("normal", "normal_mask")
    target_mask_key = "normal_mask"
    monitor_metric = "mean_angle"
    monitor_mode = "min"
    out_channels = 3
    output_kind = HeadKind.SURFACE_NORMALS
    table_metrics = (
        TableMetric("mean_angle", "Mean°", higher_is_better=False),
        TableMetric("median_angle", "Median°", higher_is_better=False),
        TableMetric("within_11_25", "<11.25 %", higher_is_better=True, scale=100.0),
        TableMetric("within_22_5", "<22.5 %", higher_is_better=True, scale=100.0),
        TableMetric("within_30", "<30 %", higher_is_better=True, scale=100.0),
    )

    def __init__(self, in_channels: int, metric_average: str = "pixel", **kwargs) -> None:
        self.metric_average = check_metric_average(metric_average, "normal.metric_average")
        super().__init__(in_channels, **kwargs)

    def forward(self, features: Tensor, output_size: Sequence[int]) -> Tensor:
        out = super().forward(features, output_size)
        if self.aleatoric:  # the log-scale channel is not part of the normal
            return torch.cat([unit_normals(out[:, :3]), out[:, 3:].float()], dim=1)
        return unit_normals(out)

    def pixel_residuals(self, prediction: Tensor, batch: Mapping[str, Tensor]):
        # Aleatoric: r = 1 - cos >= 0 with the laplace form exp(-s) r + s, which is the
        # von Mises-Fisher NLL with concentration kappa = exp(-s) (class docstring).
        cosine = (unit_normals(prediction) * batch["normal"].float()).sum(dim=1, keepdim=True)
        return 1.0 - cosine, batch["normal_mask"].bool()

    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        cosine = (unit_normals(prediction) * batch["normal"].float()).sum(dim=1)
        mask = batch["normal_mask"].to(cosine.dtype)
        # sum / count: an all-invalid batch gives 0 without reading the count on the host.
        return ((1.0 - cosine) * mask).sum() / mask.sum().clamp_min(1.0)

    def make_metrics(self) -> Metric:
        return SurfaceNormalMetrics(average=self.metric_average)

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction, batch["normal"], batch["normal_mask"])

    def postprocess(self, prediction: Tensor) -> Tensor:
        return unit_normals(prediction)
