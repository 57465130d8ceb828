"""Learning-rate schedules of the paper's recipe."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class PolynomialDecay(LRScheduler):
    """``lr = base_lr * (1 - step / total_steps) ** power``, stepped every iteration.

    The DeepLab "poly" schedule the paper trains with. ``total_steps=None`` takes the
    training budget from the trainer (``max_steps``, or epochs x batches), so a budget
    preset changes only ``trainer.max_steps`` and the schedule follows.

    Args:
        optimizer: the wrapped optimizer.
        total_steps: iterations until the rate reaches ``min_lr``; None: the trainer's budget.
        power: the polynomial's exponent (0.9 in DeepLab and the paper).
        min_lr: floor of the rate.
    """

    #: Stepped after every optimizer step, not every epoch (read by MultiTaskModule).
    interval = "step"

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        power: float = 0.9,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"PolynomialDecay.total_steps must be >= 1, got {total_steps}")
        self.total_steps = total_steps
        self.power = power
        self.min_lr = min_lr
        super().__init__(optimizer, last_epoch)

    def bind_total_steps(self, total_steps: int) -> None:
        """Set the budget from the trainer when the config left it open."""
        if self.total_steps is None:
            self.total_steps = max(1, int(total_steps))

    def get_lr(self) -> list[float]:
        if self.total_steps is None:
            return list(self.base_lrs)
        progress = min(self.last_epoch, self.total_steps) / self.total_steps
        factor = (1.0 - progress) ** self.power
        return [max(self.min_lr, base * factor) for base in self.base_lrs]
