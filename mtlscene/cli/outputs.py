"""Where a run's outputs go: the evaluation run directory and the summary each command prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker


def training_run_dir(ckpt_path: str | Path) -> Path | None:
    """The training run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    path = Path(ckpt_path)
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return None


def evaluation_logger_args(subcommand: str, ckpt_path: str | Path) -> dict[str, Any] | None:
    """Logger arguments that put an evaluation's logs inside the checkpoint's training run.

    ``<run>/<subcommand>_<checkpoint name>/`` instead of a new ``logs/version_N`` that
    looks like another training run (and would not hold the checkpoints it evaluates).
    A repeated evaluation gets the next free ``_2``, ``_3``... folder: earlier logs are kept.
    None when the checkpoint is not in a training run's ``checkpoints`` folder.
    """
    run = training_run_dir(ckpt_path)
    if run is None:
        return None
    base = version = f"{subcommand}_{Path(ckpt_path).stem}"
    number = 2
    while (run / version).exists():
        version, number = f"{base}_{number}", number + 1
    return {"save_dir": str(run), "name": "", "version": version}


def output_summary(trainer: Trainer, subcommand: str, ckpt_path: str | None = None) -> str:
    """Lines naming where the logs, checkpoints, pictures and result files of a run are."""
    lines: list[tuple[str, str]] = []
    if ckpt_path:
        lines.append(("checkpoint used", str(ckpt_path)))
    for logger in trainer.loggers:
        lines.extend(_logger_lines(logger))
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and subcommand == "fit":
            if callback.dirpath:
                lines.append(("checkpoints", str(callback.dirpath)))
            if callback.best_model_path:
                lines.append(("  best", Path(callback.best_model_path).name))
            if callback.last_model_path:
                lines.append(("  last", Path(callback.last_model_path).name))
        elif isinstance(callback, UncertaintyTracker) and callback.history_path is not None:
            lines.append(("sigma history", str(callback.history_path)))
            if callback.plot_path is not None:
                lines.append(("sigma plot", str(callback.plot_path)))
        elif isinstance(callback, PredictionWriter) and subcommand == "predict":
            if callback.pictures:
                lines.append(("pictures", str(callback.output_dir / "pictures")))
            if callback.benchmark:
                lines.append(("result files", str(callback.output_dir / "cityscapes")))
    if subcommand == "predict" and not any(
        isinstance(callback, PredictionWriter) for callback in trainer.callbacks
    ):
        lines.append(("pictures", "none: add mtlscene.callbacks.PredictionWriter to callbacks"))
    width = max(len(label) for label, _ in lines) if lines else 0
    body = "\n".join(f"  {label:<{width}}  {where}" for label, where in lines)
    return f"Outputs of {subcommand}:\n{body}" if lines else f"{subcommand} wrote no files"


def _logger_lines(logger: Any) -> list[tuple[str, str]]:
    if isinstance(logger, (CSVLogger, TensorBoardLogger)):
        log_dir = Path(logger.log_dir)
        lines = [("logs", str(log_dir))]
        if (log_dir / "config.yaml").is_file():
            lines.append(("config", str(log_dir / "config.yaml")))
        return lines
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        if getattr(run, "disabled", False):
            return [("W&B", "disabled (WANDB_MODE=disabled)")]
        directory = Path(run.dir).parent  # run.dir is <run directory>/files
        if run.offline:
            return [("W&B run (offline)", f"{directory}  (upload: wandb sync {directory})")]
        return [("W&B run", f"{run.url}  (local files: {directory})")]
    log_dir = getattr(logger, "log_dir", None)
    return [(f"logs ({type(logger).__name__})", str(log_dir))] if log_dir else []


__all__ = ["evaluation_logger_args", "output_summary", "training_run_dir"]
