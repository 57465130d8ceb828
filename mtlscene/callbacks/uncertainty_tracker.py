"""Records how each task's sigma and effective weight evolve: CSV history, PNG, W&B chart."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

HISTORY_COLUMNS = ("step", "epoch", "event", "task", "s", "sigma", "weight", "loss")


class UncertaintyTracker(Callback):
    """Tracks s = log sigma^2, sigma, effective weight and raw loss of every task.

    Every ``every_n_steps`` training steps and at each training epoch end it appends a row
    per task to ``history`` (written to ``<run dir>/uncertainty_history.csv``). At the end of
    fit it draws sigma and weight against step (one line per task) to
    ``<run dir>/uncertainty.png`` and logs that picture to the logger (W&B also gets the
    whole history as a table and a line-series chart). Scalars ``uncertainty/{s,sigma,
    weight}/<task>`` are logged by the model every logging step; this callback adds each
    epoch's final values to every logger. Works with any weighting (fixed weights give flat lines);
    under DDP only rank zero writes.

    Args:
        every_n_steps: recording interval in optimizer steps.
        filename: stem of the CSV and PNG files.
    """

    def __init__(self, every_n_steps: int = 10, filename: str = "uncertainty") -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.filename = filename
        self.history: list[dict[str, Any]] = []
        self.history_path: Path | None = None
        self.plot_path: Path | None = None

    def state_dict(self) -> dict[str, Any]:
        # Kept in checkpoints so a resumed run continues the same history.
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def _record(self, trainer: Trainer, pl_module: LightningModule, event: str) -> list[dict]:
        """Append (and return) one history row per task."""
        weighting = pl_module.weighting
        # Read back here, only when recording: the model logs these as device tensors.
        weight = {task: _scalar(value) for task, value in weighting.weights().items()}
        s = {task: _scalar(value) for task, value in weighting.log_variances().items()}
        sigma = {task: _scalar(value) for task, value in weighting.sigmas().items()}
        losses = getattr(pl_module, "latest_losses", {})
        nan = float("nan")
        rows = []
        for task in weight:
            loss = losses.get(task)
            rows.append(
                {
                    "step": trainer.global_step,
                    "epoch": trainer.current_epoch,
                    "event": event,
                    "task": task,
                    "s": s.get(task, nan),  # methods without a sigma leave s and sigma empty
                    "sigma": sigma.get(task, nan),
                    "weight": weight[task],
                    "loss": float(loss) if loss is not None else nan,
                }
            )
        self.history.extend(rows)
        return rows

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, pl_module, "step")

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rows = self._record(trainer, pl_module, "epoch_end")
        self.write_history(run_dir(trainer))
        # The model logs these keys every logging step; add the epoch's final values too.
        final = {
            f"uncertainty/{kind}/{row['task']}": row[kind]
            for row in rows
            for kind in ("s", "sigma", "weight")
            if row[kind] == row[kind]  # not NaN: the method has no sigma
        }
        final.update({f"weight/{row['task']}": row["weight"] for row in rows})
        for logger in trainer.loggers:
            logger.log_metrics(final, step=trainer.global_step)

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:
            return
        directory = run_dir(trainer)
        self.write_history(directory)
        from mtlscene.viz.weight_history import plot_uncertainty_history

        self.plot_path = plot_uncertainty_history(
            self.history, directory / f"{self.filename}.png", weight_rules(pl_module.weighting)
        )
        for logger in trainer.loggers:
            self._log_to(logger)

    def write_history(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.history_path = directory / f"{self.filename}_history.csv"
        with self.history_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(self.history)
        return self.history_path

    def _log_to(self, logger) -> None:
        if isinstance(logger, WandbLogger):
            import wandb

            logger.log_image("uncertainty/evolution", [str(self.plot_path)])
            rows = [[row[c] for c in HISTORY_COLUMNS] for row in self.history]
            logger.log_table("uncertainty/history", columns=list(HISTORY_COLUMNS), data=rows)
            tasks = sorted({row["task"] for row in self.history})
            steps = [row["step"] for row in self.history if row["task"] == tasks[0]]
            sigmas = [[row["sigma"] for row in self.history if row["task"] == t] for t in tasks]
            chart = wandb.plot.line_series(
                xs=steps, ys=sigmas, keys=tasks, title="sigma per task", xname="step"
            )
            logger.experiment.log({"uncertainty/sigma_chart": chart})
        elif isinstance(logger, TensorBoardLogger):
            import numpy as np
            from PIL import Image

            image = np.asarray(Image.open(self.plot_path).convert("RGB"))
            logger.experiment.add_image("uncertainty/evolution", image, dataformats="HWC")


def _scalar(value) -> float:
    """A float32 tensor as the float it stands for: 7 significant digits (0.1, not 0.1000000015)."""
    return float(f"{float(value):.7g}")


def run_dir(trainer: Trainer) -> Path:
    """This run's directory: the logger's versioned folder (where checkpoints go too).

    Not ``trainer.log_dir``: that broadcasts across processes, which deadlocks when called
    from rank zero alone under DDP.
    """
    logger = trainer.logger
    if isinstance(logger, WandbLogger) and logger.save_dir:
        return Path(logger.save_dir) / str(logger.name) / str(logger.version)
    if logger is not None and getattr(logger, "log_dir", None):
        return Path(logger.log_dir)
    return Path(trainer.default_root_dir)


def weight_rules(weighting) -> dict[str, str]:
    """How each task's weight follows from its sigma (``1/σ²``, ``1/(2σ²)``...), for
    weightings with a learned sigma per task (empty for the others)."""
    from mtlscene.viz.weight_history import weight_rule

    likelihoods = getattr(weighting, "likelihoods", None) or {}
    sigma_tasks = weighting.log_variances()
    return {
        task: weight_rule(*likelihoods[task].weight_exponent())
        for task in sigma_tasks
        if task in likelihoods
    }
