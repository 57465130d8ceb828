"""The TaskHead plugin interface: a decoder, its loss, its metrics and its likelihood."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.table_metric import TableMetric
from mtlscene.uncertainty.aleatoric import (
    PixelLikelihood,
    bound_log_scale,
    log_scale_for_mean_error,
    masked_mean,
    nll_gradient_error_value,
    nominal_coverage,
    pixel_nll,
)


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
    optionally ``output_kind`` (a `HeadKind` that post-processing
    looks for), choose a default ``likelihood`` and implement `loss` and `make_metrics`.
    Register them with `mtlscene.tasks.register_task` so a config can name them.

    Args:
        in_channels: channels of the encoder's output feature map, which the decoder reads
            (set by the model, not the config).
        hidden_channels: width of the decoder's 3x3 conv layers.
        num_layers: number of 3x3 conv layers before the 1x1 projection.
        likelihood: override of the task's default likelihood.
        aleatoric: also predict a per-pixel log-scale ``s`` (one more output channel) and
            train on the per-pixel negative log-likelihood (heteroscedastic uncertainty,
            `mtlscene.uncertainty.aleatoric`); the task-level weighting stays on top.
        aleatoric_likelihood: the per-pixel likelihood of a regression head's residual,
            "laplace" or "gaussian"; None takes the head's ``default_pixel_likelihood``.
        dropout: dropout probability before the decoder's final 1x1 projection while
            training (0, the default: no dropout runs, the numerics of a head without the
            option); saved with the head's options in checkpoints. MC dropout at predict
            time (`mtlscene.tasks.epistemic`) needs it > 0: it redraws these masks, at
            this probability, in eval mode.
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
    #: Per-pixel likelihood of the residual when ``aleatoric`` (regression heads; the L1
    #: heads read their loss as a Laplace likelihood, so ``s`` constant gives back L1).
    default_pixel_likelihood: ClassVar[PixelLikelihood] = PixelLikelihood.LAPLACE
    #: Whether `update_calibration_metrics` needs the task-level error scale (a
    #: regression's one sigma comes from the weighting; a softmax needs none).
    calibration_needs_error_scale: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 128,
        num_layers: int = 2,
        likelihood: str | Likelihood | None = None,
        aleatoric: bool = False,
        aleatoric_likelihood: str | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{type(self).__name__} dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        # Set by MC dropout at predict time: this head's dropout on in eval mode (BatchNorm
        # stays frozen), its masks drawn from this generator instead of the global stream.
        self.mc_generator: torch.Generator | None = None
        self.likelihood = Likelihood.parse(likelihood or self.default_likelihood)
        self.aleatoric = bool(aleatoric)
        self.pixel_likelihood = PixelLikelihood.parse(
            aleatoric_likelihood or self.default_pixel_likelihood,
            f"{type(self).__name__} aleatoric_likelihood",
        )
        # The encoder stages this head owns when it branches off before the encoder's end
        # (model.branch_point, attach_trunk); an identity without parameters by default, so
        # state dicts of heads that own none are unchanged.
        self.trunk: nn.Module = nn.Identity()
        extra = 1 if self.aleatoric else 0  # one s per pixel, shared by every component
        self.decoder = ConvDecoder(
            in_channels, self.out_channels + extra, hidden_channels, num_layers
        )
        if self.aleatoric:
            cls = type(self)
            if (
                cls.pixel_residuals is TaskHead.pixel_residuals
                and cls.aleatoric_loss is TaskHead.aleatoric_loss
            ):
                raise ValueError(
                    f"{type(self).__name__} does not support aleatoric: true; a regression head "
                    "implements pixel_residuals (residual components and mask), any other head "
                    "aleatoric_loss and make_aleatoric_metrics"
                )
            self.table_metrics = (*self.table_metrics, *self.calibration_table_metrics())

    def attach_trunk(self, trunk: nn.Module) -> None:
        """Give this head its own encoder stages, run on the shared features before the
        decoder (the head then branches off earlier; its parameters count as the task's own)."""
        self.trunk = trunk

    def forward(self, features: Tensor, output_size: Sequence[int]) -> Tensor:
        """Decode the shared features and upsample to the input image size.

        With ``aleatoric`` the last channel is the raw log-scale; `split_output` bounds it.
        """
        features = self.trunk(features)
        if self.dropout > 0 and (self.training or self.mc_generator is not None):
            hidden = features
            for layer in list(self.decoder)[:-1]:
                hidden = layer(hidden)
            if self.mc_generator is None:
                hidden = nn.functional.dropout(hidden, self.dropout, training=True)
            else:  # the same inverted dropout, its mask from the MC stream
                keep = (
                    torch.rand(hidden.shape, device=hidden.device, generator=self.mc_generator)
                    >= self.dropout
                )
                hidden = hidden * keep.to(hidden.dtype) / (1.0 - self.dropout)
            out = self.decoder[-1](hidden)
        else:
            out = self.decoder(features)
        return nn.functional.interpolate(
            out, size=tuple(output_size), mode="bilinear", align_corners=False
        )

    def split_output(self, raw: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(prediction channels, bounded s Bx1xHxW or None)`` of the raw forward output."""
        if not self.aleatoric:
            return raw, None
        return raw[:, : self.out_channels], bound_log_scale(raw[:, self.out_channels :])

    def compute_loss(
        self, prediction: Tensor, batch: Mapping[str, Tensor], log_scale: Tensor | None = None
    ) -> Tensor:
        """The task's scalar loss: `loss`, or the per-pixel NLL when ``aleatoric``."""
        if not self.aleatoric:
            return self.loss(prediction, batch)
        if log_scale is None:
            raise ValueError(
                f"{type(self).__name__} is aleatoric but no log-scale reached its loss; read the "
                "network's outputs with split_output (MultiTaskNetwork does)"
            )
        return self.aleatoric_loss(prediction, log_scale, batch)

    def pixel_residuals(
        self, prediction: Tensor, batch: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """``(residual components BxDxHxW float32, valid mask BxHxW)``: what ``aleatoric``
        regression scores. Regression heads implement it; without it ``aleatoric`` is refused."""
        raise NotImplementedError(
            f"{type(self).__name__} does not support aleatoric: true (implement pixel_residuals, "
            "or aleatoric_loss and make_aleatoric_metrics for a non-regression head)"
        )

    def aleatoric_loss(
        self, prediction: Tensor, log_scale: Tensor, batch: Mapping[str, Tensor]
    ) -> Tensor:
        """The gradient of the mean per-pixel NLL (`aleatoric.pixel_nll`) over valid
        pixels, with the value of the mean error ``sum_c |r_c|`` (the head's L1 loss).

        A continuous NLL has no natural zero, so the loss weighting sees the error instead
        (`aleatoric.nll_gradient_error_value`); the ``nll`` metric logs the NLL.
        """
        residual, mask = self.pixel_residuals(prediction, batch)
        nll = masked_mean(pixel_nll(residual, log_scale, self.pixel_likelihood), mask)
        error = masked_mean(residual.detach().abs().sum(1), mask)
        return nll_gradient_error_value(nll, error)

    def make_aleatoric_metrics(self) -> Metric:
        """NLL, AUSE and interval coverage of the per-pixel uncertainty (validate/test)."""
        from mtlscene.metrics.aleatoric import AleatoricRegressionMetrics

        return AleatoricRegressionMetrics(self.pixel_likelihood)

    def update_aleatoric_metrics(
        self, metric: Metric, prediction: Tensor, log_scale: Tensor, batch: Mapping[str, Tensor]
    ) -> None:
        """Feed one batch's residuals and log-scales into `make_aleatoric_metrics`."""
        residual, mask = self.pixel_residuals(prediction.detach(), batch)
        metric.update(residual, log_scale.detach(), mask)

    def make_calibration_metrics(self) -> Metric | None:
        """Calibration of this head *without* per-pixel sigma (``model.calibration``).

        A regression head (one with `pixel_residuals`) is read as its
        ``pixel_likelihood`` family with one scale for every pixel, set by
        `update_calibration_metrics` from the weighting's task sigma; the metrics are
        those of the aleatoric head, so the two compare like with like. None: this head
        defines no predictive distribution.
        """
        if type(self).pixel_residuals is TaskHead.pixel_residuals:
            return None
        from mtlscene.metrics.aleatoric import AleatoricRegressionMetrics

        return AleatoricRegressionMetrics(self.pixel_likelihood)

    def update_calibration_metrics(
        self,
        metric: Metric,
        prediction: Tensor,
        batch: Mapping[str, Tensor],
        error_scale: Tensor | None,
    ) -> None:
        """Feed one batch into `make_calibration_metrics`'s metric.

        ``error_scale``: the mean error ``sum_c |r_c|`` the task-level sigma stands for
        (`mtlscene.weighting.LossWeighting.error_scales`); every pixel gets the ``s``
        of `aleatoric.log_scale_for_mean_error`, so the sparsification curve is that
        of a constant ranking (AUSE = the random order's).
        """
        if error_scale is None:
            raise ValueError(
                f"{type(self).__name__}: task-level calibration needs the weighting's error "
                "scale (a weighting with a task sigma: uncertainty or settled_uncertainty)"
            )
        residual, mask = self.pixel_residuals(prediction.detach(), batch)
        s = log_scale_for_mean_error(error_scale.detach(), residual.shape[1], self.pixel_likelihood)
        shape = (residual.shape[0], 1, *residual.shape[2:])
        metric.update(residual, s.to(residual.device).expand(shape), mask)

    def calibration_table_metrics(self) -> tuple[TableMetric, ...]:
        """Calibration columns of an experiment's table (none counts in Δm): an aleatoric
        head's, or any head's with ``model.calibration``. Titled with the task's name since
        every regression head adds the same ones."""
        one, two = (100 * nominal_coverage(k, self.pixel_likelihood) for k in (1, 2))
        task = getattr(self, "task_name", type(self).__name__)
        return (
            TableMetric("nll", f"{task} NLL", False, digits=3, in_delta=False),
            TableMetric("ause", f"{task} AUSE", False, digits=3, in_delta=False),
            # Coverage is best close to nominal, neither high nor low: ``target`` says so.
            TableMetric(
                "coverage_1sigma",
                f"{task} ±1σ % (nom. {one:.1f})",
                True,
                scale=100.0,
                digits=1,
                in_delta=False,
                target=one / 100,
            ),
            TableMetric(
                "coverage_2sigma",
                f"{task} ±2σ % (nom. {two:.1f})",
                True,
                scale=100.0,
                digits=1,
                in_delta=False,
                target=two / 100,
            ),
        )

    def sigma(self, log_scale: Tensor) -> Tensor:
        """Per-pixel standard deviation (BxHxW) of one prediction component, from ``s``."""
        from mtlscene.uncertainty.aleatoric import sigma_from_log_scale

        return sigma_from_log_scale(log_scale[:, 0], self.pixel_likelihood)

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


__all__ = [
    "ConvDecoder",
    "Likelihood",
    "PixelLikelihood",
    "TableMetric",
    "TaskHead",
    "masked_l1",
    "zero_like_loss",
]
