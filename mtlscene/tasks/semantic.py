"""Semantic segmentation head: per-pixel class logits, cross-entropy, Boltzmann likelihood."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from torchmetrics import Metric

from mtlscene.data.labels import IGNORE_INDEX, class_names
from mtlscene.metrics.semantic import SemanticSegmentationMetrics
from mtlscene.tasks.base import TaskHead
from mtlscene.tasks.kinds import class_logits_kind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.table_metric import TableMetric


@register_task("semantic")
class SemanticHead(TaskHead):
    """Logits over CityScapes classes; cross-entropy averaged over non-ignored pixels.

    Args:
        label_set: "trainid" (19 evaluation classes) or "category" (7 non-void categories);
            must match the data module's ``label_set``.
        **kwargs: see :class:`TaskHead`.
    """

    default_likelihood = Likelihood.BOLTZMANN
    batch_keys = ("semantic",)
    monitor_metric = "miou"
    monitor_mode = "max"
    table_metrics = (TableMetric("miou", "IoU %", higher_is_better=True, scale=100.0),)

    def __init__(self, in_channels: int, label_set: str = "trainid", **kwargs) -> None:
        self.label_set = label_set
        self.output_kind = class_logits_kind(label_set)
        self.class_names = class_names(label_set)
        self.out_channels = len(self.class_names)
        super().__init__(in_channels, **kwargs)

    def target_present(self, batch: Mapping[str, Tensor]) -> Tensor:
        return (batch["semantic"] != IGNORE_INDEX).any()

    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch["semantic"]
        # The mean over labelled pixels, as sum / count: an all-void crop gives 0 (the plain
        # mean would be nan) without an `if` that reads the count back to the host.
        total = nn.functional.cross_entropy(
            prediction.float(), target, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        labelled = (target != IGNORE_INDEX).sum().clamp(min=1)
        return total / labelled

    def make_metrics(self) -> Metric:
        return SemanticSegmentationMetrics(len(self.class_names), IGNORE_INDEX, self.class_names)

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction.argmax(dim=1), batch["semantic"])

    def postprocess(self, prediction: Tensor) -> Tensor:
        return prediction.argmax(dim=1)
