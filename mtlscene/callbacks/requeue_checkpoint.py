"""A periodic checkpoint at a fixed path, for a job that may be preempted and requeued."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class RequeueCheckpoint(Callback):
    """Writes ``path`` every ``every_n_train_steps`` steps; a requeued job resumes from it.

    - The file is replaced atomically (written beside it, then renamed), so a signal that
      ends the job mid-write leaves the previous checkpoint intact.
    - A checkpoint that would fall on an epoch's last batch is taken one batch later:
      resuming mid-epoch is exact (:class:`~mtlscene.callbacks.ExactResume`), while at an
      epoch's very end the next epoch's loader would draw its seed from other random
      states than in the uninterrupted run.

    Args:
        path: the checkpoint file (fixed by the run folder, so a requeued job finds it).
        every_n_train_steps: training steps between two checkpoints.
    """

    def __init__(self, path: str, every_n_train_steps: int = 500) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.path = Path(path)
        self.every_n_train_steps = every_n_train_steps
        self._last_saved_step: int | None = None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        since = step - (self._last_saved_step or 0)
        if step == 0 or since < self.every_n_train_steps:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # one batch later, inside the next epoch
        partial = self.path.with_name(self.path.name + ".partial")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(partial)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        self._last_saved_step = step


__all__ = ["RequeueCheckpoint"]
