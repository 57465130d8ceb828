"""Writes the calibration figures of per-pixel uncertainty beside the run."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from mtlscene.viz.calibration import plot_reliability, plot_sparsification


class UncertaintyFigures(Callback):
    """After each validation (last one wins) and test: one figure per task with calibration
    metrics (aleatoric heads, and every head with a distribution under ``model.calibration``).

    ``{log_dir}/uncertainty/{stage}_{task}_reliability.png`` for classification heads (the
    reliability diagram) and ``{stage}_{task}_sparsification.png`` for regression heads,
    from the same DDP-summed states as the logged metrics. The model adds this callback by
    itself when it has such metrics.
    """

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def _write(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        metrics = getattr(pl_module, "calibration_metrics", None)
        if metrics is None or stage not in metrics:
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "uncertainty"
        for task, metric in metrics[stage].items():
            if not metric.update_called:
                continue
            data = metric.figure_data()  # a collective under DDP: every rank calls it
            if not trainer.is_global_zero:
                continue
            title = f"{stage} {task}"
            if "ece" in data:
                plot_reliability(data, folder / f"{stage}_{task}_reliability.png", title)
            else:
                plot_sparsification(data, folder / f"{stage}_{task}_sparsification.png", title)
