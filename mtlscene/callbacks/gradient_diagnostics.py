"""Gradient diagnostics: per task pair, how the task gradients at the shared encoder relate."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from mtlscene.callbacks.uncertainty_tracker import run_dir
from mtlscene.relationships.gradient_stats import gradient_stats, task_gradient_gramian

CSV_COLUMNS = (
    "step",
    "task_a",
    "task_b",
    "norm_a",
    "norm_b",
    "cosine",
    "ratio",
    "conflict_share",
)


class GradientDiagnostics(Callback):
    """Every ``every_n_steps`` training steps, per-task gradient norms and, per task pair,
    cosine similarity, magnitude ratio and the running share of steps in conflict (cos < 0),
    all at the shared encoder.

    With a gradient method (PCGrad, UPGrad...: a weighting that keeps ``last_gramian``) the
    step's Gramian ``J J^T`` is reused, at no cost. Otherwise the callback pays one backward
    per task on its steps (``torch.autograd.grad`` on the model's ``step_losses``, before the
    step's own backward; ``.grad`` and so training are unchanged) and nothing on the others.
    A task absent from the batch has a zero loss and gradient: its cosines and ratios are NaN
    and it does not count towards the conflict share.

    Results stay on the device during training (no host synchronisation on the step); at
    each validation end and at the end of fit they are read back once, logged to every
    logger at their own steps (``grad/norm/<task>``, ``grad/cos/<a>~<b>``,
    ``grad/ratio/<a>~<b>``, ``grad/conflict/<a>~<b>``) and written to
    ``<run dir>/gradient_diagnostics.csv`` (step, task_a, task_b, norm_a, norm_b, cosine,
    ratio = norm_a / norm_b, conflict_share = running share up to that step); at the end of
    fit also the figure ``gradient_diagnostics.png``. ``step`` counts the optimizer steps
    before the one measured (0: the first).

    Under DDP only rank zero measures and writes. With a gradient method the Gramian is of
    the DDP-averaged gradients (what the method aggregates); otherwise it is of rank zero's
    local gradients (its share of the batch), a noisier estimate of the same quantities.

    Args:
        every_n_steps: measuring interval in optimizer steps.
        filename: stem of the CSV and PNG files.
    """

    def __init__(self, every_n_steps: int = 50, filename: str = "gradient_diagnostics") -> None:
        if every_n_steps < 1:
            raise ValueError(f"GradientDiagnostics.every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.filename = filename
        self.tasks: list[str] = []
        self.rows: list[dict[str, Any]] = []
        # (step, Gramian on the device), not yet read back.
        self.pending: list[tuple[int, Tensor]] = []
        # pair -> [steps in conflict, steps with a defined cosine], for the running share.
        self.counts: dict[str, list[int]] = {}
        self.csv_path: Path | None = None
        self.figure_path: Path | None = None
        self._logged = 0  # rows already sent to the loggers
        self._last_step = -1
        self._batch: Any = None

    # -- measuring ---------------------------------------------------------------------------

    def _due(self, trainer: Trainer) -> bool:
        step = trainer.global_step
        # Once per optimizer step (several micro-batches share one with accumulation).
        return trainer.is_global_zero and step % self.every_n_steps == 0 and step != self._last_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Only the batch's reference, to know which tasks have targets on a measured step.
        self._batch = batch if self._due(trainer) else None

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: Tensor
    ) -> None:
        if not self._due(trainer):
            return
        gram = self._reused_gramian(pl_module)
        if gram is None:
            gram = self._backward_gramian(pl_module)
        self._batch = None
        if gram is None:
            return
        self._last_step = trainer.global_step
        self.pending.append((trainer.global_step, gram))

    def _reused_gramian(self, pl_module: LightningModule) -> Tensor | None:
        """A gradient method's Gramian of this step, computed in its training step."""
        weighting = pl_module.weighting
        gram = getattr(weighting, "last_gramian", None)
        if not weighting.requires_gradients or not isinstance(gram, Tensor):
            return None
        self._bind_tasks(list(weighting.tasks))
        return gram.detach().clone()  # the buffer is overwritten in place next step

    def _backward_gramian(self, pl_module: LightningModule) -> Tensor | None:
        """One backward per task on the step's losses (whose graph is still alive)."""
        losses = dict(getattr(pl_module, "step_losses", {}) or {})
        if not losses:
            return None
        if self._batch is not None:
            # As the weighting does: an absent task's loss counts as 0 (zero gradient).
            for name, head in pl_module.heads.items():
                present = head.target_present(self._batch) if name in losses else None
                if present is not None:
                    loss = losses[name]
                    losses[name] = torch.where(present, loss, torch.zeros_like(loss))
        params = [p for p in pl_module.network.encoder.parameters() if p.requires_grad]
        self._bind_tasks(list(losses))
        return task_gradient_gramian(list(losses.values()), params)

    def _bind_tasks(self, tasks: list[str]) -> None:
        if self.tasks and tasks != self.tasks:
            raise ValueError(
                f"GradientDiagnostics: the tasks changed from {self.tasks} to {tasks} during "
                "training; use one callback per run"
            )
        self.tasks = tasks

    # -- reading back, logging, writing -------------------------------------------------------

    def materialize(self) -> list[dict[str, Any]]:
        """Read the pending measurements back (one transfer) into `rows`; the new rows."""
        if not self.pending:
            return []
        grams = torch.stack([gram for _, gram in self.pending]).float().cpu()
        steps = [step for step, _ in self.pending]
        self.pending = []
        new_rows = []
        for step, gram in zip(steps, grams, strict=True):
            stats = gradient_stats(gram, self.tasks)
            norms = dict(zip(stats.tasks, stats.norms.tolist(), strict=True))
            for (a, b), cosine, ratio in zip(
                stats.pairs, stats.cosine.tolist(), stats.ratio.tolist(), strict=True
            ):
                counts = self.counts.setdefault(f"{a}~{b}", [0, 0])
                if not math.isnan(cosine):
                    counts[0] += cosine < 0
                    counts[1] += 1
                share = counts[0] / counts[1] if counts[1] else math.nan
                new_rows.append(
                    {
                        "step": step,
                        "task_a": a,
                        "task_b": b,
                        "norm_a": _scalar(norms[a]),
                        "norm_b": _scalar(norms[b]),
                        "cosine": _scalar(cosine),
                        "ratio": _scalar(ratio),
                        "conflict_share": share,
                    }
                )
        self.rows.extend(new_rows)
        return new_rows

    def flush(self, trainer: Trainer) -> None:
        """Read back, log the new rows to every logger at their steps, rewrite the CSV."""
        if not trainer.is_global_zero:
            return
        self.materialize()
        if not self.rows:
            return
        for step, metrics in _metrics_by_step(self.rows[self._logged :]).items():
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
        self._logged = len(self.rows)
        self.write_csv(run_dir(trainer))

    def write_csv(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = directory / f"{self.filename}.csv"
        with self.csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return self.csv_path

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.flush(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.flush(trainer)
        if not trainer.is_global_zero or not self.rows:
            return
        from mtlscene.relationships.gradient_figures import gradient_history_figure, save_figure

        self.figure_path = save_figure(
            gradient_history_figure(self.rows), run_dir(trainer) / f"{self.filename}.png"
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("grad/diagnostics", [str(self.figure_path)])
            elif isinstance(logger, TensorBoardLogger):
                import numpy as np
                from PIL import Image

                image = np.asarray(Image.open(self.figure_path).convert("RGB"))
                logger.experiment.add_image("grad/diagnostics", image, dataformats="HWC")

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # Kept in checkpoints so a resumed run continues the same history and conflict share.
        self.materialize()
        return {"tasks": self.tasks, "rows": self.rows, "counts": self.counts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tasks = list(state_dict.get("tasks", []))
        self.rows = list(state_dict.get("rows", []))
        self.counts = {k: list(v) for k, v in state_dict.get("counts", {}).items()}
        self._logged = len(self.rows)  # the loggers saw them before the restart


def _metrics_by_step(rows: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """step -> logger scalars of that step (NaN values left out: loggers chart them badly)."""
    metrics: dict[int, dict[str, float]] = {}
    for row in rows:
        pair = f"{row['task_a']}~{row['task_b']}"
        values = metrics.setdefault(row["step"], {})
        values[f"grad/norm/{row['task_a']}"] = row["norm_a"]
        values[f"grad/norm/{row['task_b']}"] = row["norm_b"]
        values[f"grad/cos/{pair}"] = row["cosine"]
        values[f"grad/ratio/{pair}"] = row["ratio"]
        values[f"grad/conflict/{pair}"] = row["conflict_share"]
    return {
        step: {k: v for k, v in values.items() if not math.isnan(v)}
        for step, values in metrics.items()
    }


def _scalar(value: float) -> float:
    """A float32 value as the float it stands for (7 significant digits)."""
    return float(f"{value:.7g}")


__all__ = ["GradientDiagnostics"]
