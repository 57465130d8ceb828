"""Callbacks for the preemption tests (imported by class path by the CLI)."""

from __future__ import annotations

import multiprocessing
import os
import signal

from lightning.pytorch import Callback


class SignalAt(Callback):
    """Sends ``signals`` to this process at the start of the step after ``global_step``
    steps: mid-step, as a preemption would."""

    def __init__(self, global_step: int, signals: list[str]) -> None:
        self.global_step = global_step
        self.signals = [getattr(signal, name) for name in signals]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.global_step:
            for signum in self.signals:
                os.kill(os.getpid(), signum)


class SignalWorkersAt(Callback):
    """Sends ``signals`` to every DataLoader worker of this process (as SLURM signals every
    process of a job step) at the start of the step after ``global_step`` steps."""

    def __init__(self, global_step: int, signals: list[str]) -> None:
        self.global_step = global_step
        self.signals = [getattr(signal, name) for name in signals]
        self.workers_signalled = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.global_step:
            for worker in multiprocessing.active_children():
                for signum in self.signals:
                    os.kill(worker.pid, signum)
                self.workers_signalled += 1


class SignalInValidation(Callback):
    """Sends ``signals`` to this process in the first validation after training began
    (after the training step, before the step's end in Lightning's loop)."""

    def __init__(self, signals: list[str]) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        self.sent = False

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_step == 0 or self.sent:
            return
        self.sent = True
        for signum in self.signals:
            os.kill(os.getpid(), signum)


class SignalOnHook(Callback):
    """Sends ``signals`` to this process once, from the callback hook named ``hook``
    (before the first training step ends: ``setup``, ``on_fit_start``,
    ``on_sanity_check_start``, ``on_train_start``, ``on_train_epoch_start``...), in a fit
    that does not resume: the requeued attempt builds the probe again and must not stop."""

    def __init__(self, hook: str, signals: list[str]) -> None:
        self.hook = hook
        self.signals = [getattr(signal, name) for name in signals]
        self.sent = False

    def _maybe_send(self, hook: str, trainer) -> None:
        if hook != self.hook or self.sent or trainer.state.fn != "fit" or trainer.ckpt_path:
            return
        self.sent = True
        for signum in self.signals:
            os.kill(os.getpid(), signum)

    def setup(self, trainer, pl_module, stage) -> None:
        self._maybe_send("setup", trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._maybe_send("on_fit_start", trainer)

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self._maybe_send("on_sanity_check_start", trainer)

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self._maybe_send("on_sanity_check_end", trainer)

    def on_train_start(self, trainer, pl_module) -> None:
        self._maybe_send("on_train_start", trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._maybe_send("on_train_epoch_start", trainer)
