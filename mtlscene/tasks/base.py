"""The TaskHead plugin interface: a decoder, its loss, its metrics and its likelihood."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn
from torchmetrics import Metric

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.table_metric import TableMetric


class ConvDecoder(nn.Sequential):
    """The paper's per-task decoder: 3x3 conv-BN-ReLU layers, then a 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 128, depth: int = 2):
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
            ]
            channels = hidden
        layers.append(nn.Conv2d(channels, out_channels, 1))
        super().__init__(*layers)


class TaskHead(nn.Module, ABC):
    """A pluggable task: decodes shared features and scores its output against the batch.

    Subclasses set ``out_channels`` and ``batch_keys`` (the target keys their loss reads),
    optionally ``output_kind`` (a :class:`~mtlscene.tasks.kinds.HeadKind` that post-processing
    looks for), choose a default ``likelihood`` and implement :meth:`loss` and :meth:`make_metrics`.
    Register them with :func:`mtlscene.tasks.register_task` so a config can name them.

    Args:
        in_channels: channels of the shared feature map (set by the model, not the config).
        hidden_channels: width of the decoder's 3x3 conv layers.
        num_layers: number of 3x3 conv layers before the 1x1 projection.
        likelihood: override of the task's default likelihood.
    """

    default_likelihood: ClassVar[Likelihood]
    batch_keys: ClassVar[tuple[str, ...]]
    target_mask_key: ClassVar[str | None] = None
    out_channels: int
    #: The validation metric that says how good this task is (a key of the dict returned by
    #: the metric's ``compute()``, or "value") and whether higher is better. Checkpointing
    #: follows the first active task's metric, so presets that switch tasks off need no edits.
    monitor_metric: ClassVar[str] = "value"
    monitor_mode: ClassVar[str] = "min"
    # What the raw output is (a HeadKind), so post-processing finds its inputs by kind.
    output_kind: str | None = None
    #: The columns this task adds to an experiment's table (test metrics) and which of them
    #: count in Δm. A head may set it per instance when its configuration changes the
    #: benchmark's protocol (e.g. the semantic head on NYUv2 also reports pixel accuracy).
    table_metrics: tuple[TableMetric, ...] = ()

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 128,
        num_layers: int = 2,
        likelihood: str | Likelihood | None = None,
    ) -> None:
        super().__init__()
        self.likelihood = Likelihood.parse(likelihood or self.default_likelihood)
        self.decoder = ConvDecoder(in_channels, self.out_channels, hidden_channels, num_layers)

    def forward(self, features: Tensor, output_size: Sequence[int]) -> Tensor:
        """Decode the shared features and upsample to the input image size."""
        out = self.decoder(features)
        return nn.functional.interpolate(
            out, size=tuple(output_size), mode="bilinear", align_corners=False
        )

    def check_batch(self, batch: Mapping[str, Any], task_name: str) -> None:
        """Fail clearly when the data does not provide what this task's loss reads."""
        missing = [key for key in self.batch_keys if key not in batch]
        if missing:
            raise KeyError(
                f"task {task_name!r} needs batch keys {missing}, which the data module does "
                f"not provide (it provides {sorted(batch)}); add them to the dataset or "
                "remove the task from model.tasks"
            )

    def target_present(self, batch: Mapping[str, Any]) -> Tensor | None:
        """0-dim bool tensor: whether the batch has any target pixel for this task.

        When False the weighting leaves the task out of that step's total (loss and, for
        learned uncertainty, its regulariser). Heads set ``target_mask_key`` to the batch's
        validity mask, or override this; None means the target is always present.
        """
        if self.target_mask_key is None:
            return None
        return batch[self.target_mask_key].bool().any()

    @abstractmethod
    def loss(self, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The raw (unweighted) task loss L, a scalar."""

    @abstractmethod
    def make_metrics(self) -> Metric:
        """A fresh torchmetrics metric; ``compute()`` returns a dict of named values (logged as
        ``val/<task>/<name>``) or a single value (logged as ``val/<task>/value``)."""

    @abstractmethod
    def update_metrics(self, metric: Metric, prediction: Tensor, batch: Mapping[str, Tensor]):
        """Feed one batch's prediction and targets into a metric made by make_metrics."""

    def postprocess(self, prediction: Tensor) -> Tensor:
        """Turn the raw output into the task's prediction (e.g. argmax); identity by default."""
        return prediction


def masked_l1(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean over masked pixels of the L1 norm across channels (0 when no pixel is valid).

    prediction/target: BxCxHxW, mask: BxHxW. Summing over channels before averaging over
    pixels makes the 2-D instance loss the paper's ``||x - x_hat||_1``.
    """
    error = (prediction - target).abs().sum(dim=1)
    mask = mask.to(error.dtype)
    # Clamping the count keeps an all-invalid batch at loss 0 with a defined gradient.
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def zero_like_loss(prediction: Tensor) -> Tensor:
    """A zero loss that still depends on the prediction, so DDP sees every parameter used."""
    return prediction.sum() * 0.0


__all__ = ["ConvDecoder", "Likelihood", "TableMetric", "TaskHead", "masked_l1", "zero_like_loss"]
