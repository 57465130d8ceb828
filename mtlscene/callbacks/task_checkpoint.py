"""A ModelCheckpoint whose monitored metric follows the model's active tasks."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

AUTO = "auto"


class TaskCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with ``monitor: auto`` (the default): it tracks the validation
    metric of the model's first active task (``val/semantic/miou``, else the instance or
    depth error, or what a custom head declares as ``monitor_metric``) in that metric's
    direction.

    So a preset that switches the semantic head off needs no checkpoint edits: the callback
    asks the model which metric exists. Never the weighted total, which can be negative
    and says nothing about quality. An explicit ``monitor``/``mode`` behaves as in
    ``ModelCheckpoint``.

    Args:
        monitor: a logged metric key, or "auto".
        mode: "min", "max", or "auto" (the metric's own direction; only with monitor auto).
        **kwargs: see `lightning.pytorch.callbacks.ModelCheckpoint`.
    """

    def __init__(self, monitor: str | None = AUTO, mode: str = AUTO, **kwargs) -> None:
        if mode == AUTO and monitor != AUTO:
            raise ValueError(
                f"TaskCheckpoint: mode 'auto' needs monitor 'auto', got monitor={monitor!r}; "
                "set mode to 'min' or 'max'"
            )
        # ModelCheckpoint validates the mode now; the real one is set in setup().
        super().__init__(monitor=monitor, mode="min" if mode == AUTO else mode, **kwargs)
        self.auto_mode = mode == AUTO
        self.configured = (monitor, mode)

    @property
    def state_key(self) -> str:
        # From the configured values, not the resolved ones: the key must be the same before
        # setup() (when the CLI looks a checkpoint's state up) as after it (when it is saved).
        return self._generate_state_key(
            monitor=self.configured[0],
            mode=self.configured[1],
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.monitor == AUTO:
            metric = getattr(pl_module, "monitored_metric", None)
            if metric is None:
                raise ValueError(
                    f"TaskCheckpoint(monitor='auto') needs a model with `monitored_metric`; "
                    f"{type(pl_module).__name__} has none: set the callback's monitor"
                )
            self.monitor, mode = metric
            if self.auto_mode:
                self.mode = mode
                self.kth_value = torch.tensor(torch.inf if mode == "min" else -torch.inf)
        super().setup(trainer, pl_module, stage)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: Trainer) -> None:
        # Lightning 2.6 rewrites last.ckpt only at steps where a top-k checkpoint was saved,
        # so a validation that did not improve left it behind; `last` is the latest state.
        if self.save_last is True and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
