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
