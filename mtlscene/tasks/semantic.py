"""Semantic segmentation head: per-pixel class logits, cross-entropy, Boltzmann likelihood."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from mtlscene.data.cityscapes.labels import class_names as cityscapes_class_names
from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.data.nyuv2.layout import NYUV2_CLASS_NAMES
from mtlscene.metrics.semantic import SemanticSegmentationMetrics
from mtlscene.tasks.base import TaskHead
from mtlscene.tasks.kinds import class_logits_kind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.noisy_softmax import (
    DEFAULT_ESTIMATOR,
    check_estimator,
    expected_log_probabilities,
    noisy_softmax_cross_entropy,
)
from mtlscene.tasks.registry import register_task
from mtlscene.tasks.sampling import mc_generator
from mtlscene.tasks.table_metric import TableMetric
from mtlscene.uncertainty.aleatoric import DEFAULT_SEMANTIC_SAMPLES

CITYSCAPES_LABEL_SETS = ("trainid", "category")
LABEL_SETS = (*CITYSCAPES_LABEL_SETS, "nyuv2", "custom")


def resolve_classes(
    label_set: str | None, num_classes: int | None, class_names: list[str] | None
) -> tuple[str, tuple[str, ...]]:
    """The label set and its class names from the head's options, or a clear ValueError."""
    if label_set is None:
        label_set = "trainid" if num_classes is None and class_names is None else "custom"
    if label_set not in LABEL_SETS:
        raise ValueError(
            f"semantic head: unknown label_set {label_set!r}; choose one of {list(LABEL_SETS)} "
            "(or give num_classes for a custom class list)"
        )
    if label_set in CITYSCAPES_LABEL_SETS:
        if class_names is not None:
            raise ValueError(
                f"semantic head: class_names cannot rename the CityScapes label_set "
                f"{label_set!r}; drop class_names or use label_set: custom"
            )
        names = cityscapes_class_names(label_set)
    elif label_set == "nyuv2":
        names = tuple(class_names) if class_names is not None else NYUV2_CLASS_NAMES
        if len(names) != len(NYUV2_CLASS_NAMES):
            raise ValueError(
                f"semantic head: label_set nyuv2 has {len(NYUV2_CLASS_NAMES)} classes but "
                f"class_names lists {len(names)}"
            )
    elif class_names is not None:
        names = tuple(class_names)
    elif num_classes is not None:
        names = tuple(f"class {index}" for index in range(num_classes))
    else:
        raise ValueError("semantic head: label_set custom needs num_classes or class_names")
    if num_classes is not None and num_classes != len(names):
        raise ValueError(
            f"semantic head: num_classes is {num_classes} but label_set {label_set!r} "
            f"{'with these class_names ' if class_names is not None else ''}has "
            f"{len(names)} classes; make them agree (label_set: custom for another class list)"
        )
    if len(names) < 2:
        raise ValueError(f"semantic head: needs at least 2 classes, got {len(names)}")
    return label_set, names


@register_task("semantic")
class SemanticHead(TaskHead):
    """Per-pixel class logits; cross-entropy averaged over non-ignored pixels (ignore 255).

    CityScapes (the default): ``label_set`` "trainid" (19 evaluation classes) or "category"
    (7 non-void categories), matching the data module's ``label_set``; these logits feed
    instance clustering, panoptic fusion and the official evaluation, and the table reports
    IoU only (the paper's Table 1).

    Other data: ``label_set: nyuv2`` (the 13 NYUv2 classes, named), or ``num_classes: N``
    (optionally ``class_names``) for any other class list (``label_set`` "custom", classes
    named "class 0".."class N-1" unless named). Those logits are not CityScapes trainIds, so
    no CityScapes post-processing reads them, and the table reports mIoU and pixel accuracy,
    both counted in Δm (the NYUv2 protocol).

    Args:
        label_set: "trainid", "category", "nyuv2" or "custom"; None (default) is "trainid"
            unless ``num_classes`` or ``class_names`` is given, then "custom".
        num_classes: number of classes (logits); must agree with ``label_set`` and
            ``class_names`` when those fix it.
        class_names: names of the classes, in target-index order (nyuv2 or custom only);
            they name the ``iou/<class>`` metrics.
        aleatoric_samples: T, the Monte-Carlo samples of the noisy logits when
            ``aleatoric: true`` (default 10): the ``sampled`` estimator's draws, and those of
            the calibration metrics. With ``aleatoric: true`` the head predicts one more
            channel, a per-pixel ``s = log sigma^2`` of Gaussian noise on every logit, and
            trains on ``-log E[softmax(logits + sigma eps)][y]`` (Kendall & Gal 2017,
            Eq. 12); the prediction stays the argmax of the logits, and validate/test
            report the NLL and the expected calibration error of the Monte-Carlo mean
            probabilities.
        aleatoric_estimator: how that expectation is estimated
            (`mtlscene.tasks.noisy_softmax`): "mean_field" (the default: the probit
            approximation ``softmax(z / sqrt(1 + pi sigma^2 / 8))``, no sampling) or
            "sampled" (Kendall & Gal's Monte-Carlo mean over ``aleatoric_samples`` draws,
            the loss before mean_field became the default). Outside training the sampled
            loss draws from a dedicated seeded generator (`mtlscene.tasks.sampling`).
        **kwargs: see `TaskHead`.
    """

    default_likelihood = Likelihood.BOLTZMANN
    batch_keys = ("semantic",)
    monitor_metric = "miou"
    monitor_mode = "max"
    table_metrics = (TableMetric("miou", "IoU %", higher_is_better=True, scale=100.0),)
    calibration_needs_error_scale = False  # the softmax is a distribution by itself

    def __init__(
        self,
        in_channels: int,
        label_set: str | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        aleatoric_samples: int = DEFAULT_SEMANTIC_SAMPLES,
        aleatoric_estimator: str = DEFAULT_ESTIMATOR,
        **kwargs,
    ) -> None:
        if int(aleatoric_samples) < 1:
            raise ValueError(
                f"semantic head: aleatoric_samples must be >= 1, got {aleatoric_samples}"
            )
        self.aleatoric_samples = int(aleatoric_samples)
        self.aleatoric_estimator = check_estimator(
            aleatoric_estimator, "semantic head aleatoric_estimator"
        )
        self.label_set, self.class_names = resolve_classes(label_set, num_classes, class_names)
        self.output_kind = class_logits_kind(self.label_set)
        self.out_channels = len(self.class_names)
        if self.label_set not in CITYSCAPES_LABEL_SETS:
            # NYUv2's protocol: both metrics, both in Δm (set per instance; CityScapes keeps
            # the class attribute).
            self.table_metrics = (
                TableMetric("miou", "mIoU %", higher_is_better=True, scale=100.0),
                TableMetric("pixel_accuracy", "Pix acc %", higher_is_better=True, scale=100.0),
            )
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

    def aleatoric_loss(self, prediction: Tensor, log_scale: Tensor, batch: Mapping[str, Tensor]):
        return noisy_softmax_cross_entropy(
            prediction,
            log_scale,
            batch["semantic"],
            IGNORE_INDEX,
            self.aleatoric_estimator,
            self.aleatoric_samples,
            self._evaluation_generator(prediction),
        )

    def aleatoric_log_probabilities(
        self, prediction: Tensor, log_scale: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``log E[softmax(logits + sigma eps)]`` (BxCxHxW) by this head's estimator."""
        return expected_log_probabilities(
            prediction, log_scale, self.aleatoric_estimator, self.aleatoric_samples, generator
        )

    def _evaluation_generator(self, prediction: Tensor) -> torch.Generator | None:
        """Training draws from the global stream (resumed exactly with it); validation and
        test from a fresh seeded one, so they repeat and leave the global stream alone."""
        if self.training or self.aleatoric_estimator != "sampled":
            return None
        return mc_generator(prediction.device)

    def make_aleatoric_metrics(self) -> Metric:
        from mtlscene.metrics.aleatoric import SemanticCalibration

        return SemanticCalibration(IGNORE_INDEX, samples=self.aleatoric_samples)

    def update_aleatoric_metrics(
        self, metric: Metric, prediction: Tensor, log_scale: Tensor, batch: Mapping[str, Tensor]
    ) -> None:
        metric.update(prediction.detach(), log_scale.detach(), batch["semantic"])

    def make_calibration_metrics(self) -> Metric:
        """NLL and ECE of the softmax (the head's predictive distribution without sigma)."""
        from mtlscene.metrics.aleatoric import SemanticCalibration

        return SemanticCalibration(IGNORE_INDEX, samples=self.aleatoric_samples)

    def update_calibration_metrics(
        self,
        metric: Metric,
        prediction: Tensor,
        batch: Mapping[str, Tensor],
        error_scale: Tensor | None = None,
    ) -> None:
        """The plain softmax of ``prediction`` (the model passes logits already scaled by
        ``1 / sigma^2`` under the exact Boltzmann form, which trains that distribution)."""
        metric.update(prediction.detach(), None, batch["semantic"])

    def calibration_table_metrics(self) -> tuple[TableMetric, ...]:
        return (
            TableMetric("nll", "semantic NLL", False, digits=3, in_delta=False),
            TableMetric("ece", "semantic ECE %", False, scale=100.0, in_delta=False),
        )

    def sigma(self, log_scale: Tensor) -> Tensor:
        """Per-pixel standard deviation of the logit noise, ``exp(s / 2)`` (BxHxW)."""
        return torch.exp(0.5 * log_scale[:, 0].float())

    def make_metrics(self) -> Metric:
        return SemanticSegmentationMetrics(len(self.class_names), IGNORE_INDEX, self.class_names)

    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        metric.update(prediction.argmax(dim=1), batch["semantic"])

    def postprocess(self, prediction: Tensor) -> Tensor:
        return prediction.argmax(dim=1)
