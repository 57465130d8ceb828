"""Non-finite loss detection that never stalls the training step on a host read-back."""

from __future__ import annotations

import torch
from torch import Tensor


class NonFiniteLossMonitor:
    """Remembers, on the device, the first step at which each task's loss was NaN or inf.

    `update_stacked` runs inside the training step and only queues device operations;
    `check` reads the record back (one synchronisation) and raises naming each task and
    the step where it first went non-finite. The model calls `check` every few steps,
    so a run stops at most that many steps after the fault.
    """

    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.first_bad_step: Tensor | None = None

    def update_stacked(self, tasks: list[str], values: Tensor, step: int) -> None:
        """Record which of ``tasks``' losses (stacked in that order) are non-finite at
        ``step``: device operations only, no host synchronisation."""
        if self.first_bad_step is None or self.tasks != tasks:
            self.tasks = list(tasks)
            self.first_bad_step = torch.full_like(values, -1, dtype=torch.long)
        bad = ~torch.isfinite(values) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)

    def check(self, stage: str = "training") -> None:
        """Raise FloatingPointError if any recorded loss was non-finite (one read-back)."""
        if self.first_bad_step is None:
            return
        steps = self.first_bad_step.tolist()
        bad = {task: step for task, step in zip(self.tasks, steps, strict=True) if step >= 0}
        if bad:
            where = ", ".join(f"{task} (first at global step {step})" for task, step in bad.items())
            raise FloatingPointError(
                f"non-finite {stage} loss for task(s) {where}; lower the learning rate, check "
                "that task's targets, or clamp the uncertainty (weighting.init_args.clamp)"
            )
