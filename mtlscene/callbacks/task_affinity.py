"""Measures the lookahead inter-task affinity (TAG) every N steps of a fit."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from mtlscene.callbacks.uncertainty_tracker import run_dir
from mtlscene.relationships.affinity import lookahead_affinity, optimizer_lookahead

CSV_COLUMNS = ("step", "i", "j", "affinity")


class TaskAffinity(Callback):
    """Every ``every_n_steps`` optimizer steps, the T x T lookahead affinity on the batch.

    ``Z(i -> j) = 1 - L_j(theta_s - eta * u_i) / L_j(theta_s)``: the shared encoder takes a
    step on task ``i``'s weighted loss alone (the heads stay), and task ``j``'s loss on the
    same training batch is read again (see `mtlscene.relationships.affinity` for
    ``eta`` and ``u_i``). The weight ``w_i`` is the weighting's current one
    (``weighting.weights()``), so the step is task ``i``'s share of the update the
    optimizer is about to take. Measured at ``on_train_batch_start``, before the step, on
    the batch the step is about to train on. It leaves training untouched: the parameters
    are copied back, BatchNorm running statistics (every buffer) restored, the random
    number generators forked (dropout draws and the data order do not move), and no
    ``.grad`` is written. Costs T + 1 forward and T backward passes on those steps only.

    At the end of fit (rank zero) it writes in the run's log folder ``<filename>.csv``
    (step, i, j, affinity), ``<filename>.json`` (task order, the mean matrix over training,
    the number of measurements) and ``<filename>.png`` (heatmap); each measurement is logged
    to the loggers as ``affinity/<i>-><j>``.

    Args:
        every_n_steps: measurement interval in optimizer steps (step 0 included).
        filename: stem of the files written.
        step: "sgd" (the default: a plain gradient step ``eta w_i g_i`` at the optimizer's
            learning rate, so the affinity is close to its first-order value
            ``eta w_i g_i . g_j / L_j``) or "adam" (Adam's second-moment preconditioning of
            ``w_i g_i``, the step as an Adam-like optimizer would take it, as in TAG; needs
            Adam or AdamW).
    """

    STEPS = ("sgd", "adam")

    def __init__(
        self, every_n_steps: int = 10, filename: str = "task_affinity", step: str = "sgd"
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"TaskAffinity: every_n_steps must be >= 1, got {every_n_steps}")
        if step not in self.STEPS:
            raise ValueError(f"TaskAffinity: step must be one of {self.STEPS}, got {step!r}")
        self.step = step
        self.every_n_steps = every_n_steps
        self.filename = filename
        self.history: list[dict[str, Any]] = []
        self.lookahead = ""
        self._measured_step = -1

    def state_dict(self) -> dict[str, Any]:
        # A resumed run continues the same history.
        return {"history": self.history, "lookahead": self.lookahead}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.lookahead = state_dict.get("lookahead", "")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Refuse step: adam with another optimizer before training, not at the first measure.
        if self.step == "adam":
            params = [p for p in pl_module.network.encoder.parameters() if p.requires_grad]
            try:
                optimizer_lookahead(trainer.optimizers[0], params, "adam")
            except ValueError as error:
                raise ValueError(f"TaskAffinity: {error}") from None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches share a step: measure on the first.
        if step % self.every_n_steps or step == self._measured_step:
            return
        self._measured_step = step
        tasks, matrix = self.measure(trainer, pl_module, batch)
        rows = [
            {"step": step, "i": source, "j": target, "affinity": float(matrix[a, b])}
            for a, source in enumerate(tasks)
            for b, target in enumerate(tasks)
        ]
        self.history.extend(rows)
        self._log(trainer, {f"affinity/{r['i']}->{r['j']}": r["affinity"] for r in rows}, step)

    def measure(
        self, trainer: Trainer, pl_module: LightningModule, batch: Mapping[str, Any]
    ) -> tuple[list[str], torch.Tensor]:
        """The affinity matrix on ``batch``, everything the model holds restored after."""
        params = [p for p in pl_module.network.encoder.parameters() if p.requires_grad]
        lr, precondition, self.lookahead = optimizer_lookahead(
            trainer.optimizers[0], params, self.step
        )
        # Each task's step is its share of the weighted update: w_i g_i.
        weights = {name: float(w) for name, w in pl_module.weighting.weights().items()}
        buffers = [b for b in pl_module.buffers()]
        saved = [b.detach().clone() for b in buffers]
        device = pl_module.device
        devices = [device.index or 0] if device.type == "cuda" else []

        def compute_losses() -> Mapping[str, torch.Tensor]:
            with trainer.precision_plugin.forward_context():
                outputs = pl_module(batch["image"])
                scales = pl_module.weighting.prediction_scales()
                outputs = {n: o * scales[n] if n in scales else o for n, o in outputs.items()}
                return pl_module.task_losses(outputs, batch)

        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                return lookahead_affinity(params, compute_losses, lr, precondition, weights)
        finally:
            with torch.no_grad():
                for buffer, value in zip(buffers, saved, strict=True):
                    buffer.copy_(value)

    @rank_zero_only
    def _log(self, trainer: Trainer, metrics: dict[str, float], step: int) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def mean_matrix(self) -> tuple[list[str], list[list[float]], int]:
        """Task order, the mean matrix over the measurements so far, and their number."""
        tasks = list(dict.fromkeys(row["i"] for row in self.history))
        steps = {row["step"] for row in self.history}
        sums = {(row["i"], row["j"]): 0.0 for row in self.history}
        for row in self.history:
            sums[row["i"], row["j"]] += row["affinity"]
        count = len(steps)
        matrix = [[sums[i, j] / count for j in tasks] for i in tasks]
        return tasks, matrix, count

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:
            return
        directory = run_dir(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"{self.filename}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(self.history)
        tasks, matrix, count = self.mean_matrix()
        summary = {
            "tasks": tasks,
            "matrix": matrix,
            "count": count,
            "every_n_steps": self.every_n_steps,
            "lookahead": self.lookahead,
            "definition": "matrix[i][j] = Z(i -> j) = 1 - L_j(after a step on i) / L_j(before)",
        }
        (directory / f"{self.filename}.json").write_text(json.dumps(summary, indent=2), "utf-8")
        from mtlscene.relationships.affinity_figure import plot_affinity

        title = f"Lookahead affinity Z(i → j), mean of {count} steps"
        path = plot_affinity(tasks, matrix, directory / f"{self.filename}.png", title=title)
        for logger in trainer.loggers:
            _log_figure(logger, path)


def _log_figure(logger, path: Path) -> None:
    if isinstance(logger, WandbLogger):
        logger.log_image("affinity/matrix", [str(path)])
    elif isinstance(logger, TensorBoardLogger):
        import numpy as np
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))
        logger.experiment.add_image("affinity/matrix", image, dataformats="HWC")
