"""A checkpoint at a fixed path, for a job that may be preempted and requeued: periodic, and
at the step a stop signal (USR2, SIGTERM) arrived."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from mtlscene.callbacks.preemption import STOP_REQUEST, RequeueRequested


class RequeueCheckpoint(Callback):
    """Writes ``path`` every ``every_n_train_steps`` steps and when a stop signal arrives.

    - On USR2 or SIGTERM (`mtlscene.callbacks.preemption`: the main process alone
      records it) the run saves ``path`` at the end of the current training step and raises
      `RequeueRequested`; the SLURM job catches it
      and requeues, and the next attempt resumes from that very step, not from the last
      periodic checkpoint. Under DDP the ranks agree at every step (one boolean
      all-reduce), so all of them save the same step.
    - A signal during the run's last step changes nothing: the run finishes.
    - The file is replaced atomically (written beside it, then renamed), so a signal that
      ends the job mid-write leaves the previous checkpoint intact.
    - A checkpoint that would fall on an epoch's last batch is taken one batch later:
      resuming mid-epoch is exact (`ExactResume`), while at an
      epoch's very end the next epoch's loader would draw its seed from other random
      states than in the uninterrupted run.

    Args:
        path: the checkpoint file (fixed by the run folder, so a requeued job finds it).
        every_n_train_steps: training steps between two periodic checkpoints.
    """

    def __init__(self, path: str, every_n_train_steps: int = 500) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.path = Path(path)
        self.every_n_train_steps = every_n_train_steps
        self._last_saved_step: int | None = None
        self._previous_handlers: dict[int, Any] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            # Before any DataLoader worker is forked, so that workers inherit the handler
            # that ignores the signal outside the main process.
            self._previous_handlers = STOP_REQUEST.install()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning set its own SIGTERM handler since `setup` (it would stop the fit
        # without a checkpoint): take SIGTERM back. Lightning restores what it replaced.
        STOP_REQUEST.install()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._release()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._release()  # `teardown` is not called then

    def _release(self) -> None:
        # The fit is over: a signal it did not act on (its last step) must not stop the
        # next fit of this process, and the signals go back to their earlier handlers.
        STOP_REQUEST.clear()
        STOP_REQUEST.restore(self._previous_handlers)
        self._previous_handlers = {}

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        stop = STOP_REQUEST.requested
        if trainer.world_size > 1:  # every rank, every step: all must save the same step
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if stop and not last_batch and not self._training_ends(trainer, step):
            self._save(trainer, step)
            raise RequeueRequested(STOP_REQUEST.signum, step, self.path)
        since = step - (self._last_saved_step or 0)
        if step == 0 or since < self.every_n_train_steps:
            return
        if last_batch:
            return  # one batch later, inside the next epoch
        self._save(trainer, step)

    @staticmethod
    def _training_ends(trainer: Trainer, step: int) -> bool:
        """Whether the fit stops after this step anyway (then it finishes, not requeues)."""
        return trainer.should_stop or 0 <= trainer.max_steps <= step

    def _save(self, trainer: Trainer, step: int) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(partial)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        self._last_saved_step = step


__all__ = ["RequeueCheckpoint"]
