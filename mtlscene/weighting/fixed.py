"""Constant per-task weights: the hand-tuned baselines of the paper."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting


class FixedWeighting(LossWeighting):
    """``total = sum_i w_i L_i`` with constant weights; a weight of 0 switches a task off.

    A task that is off has its head neither computed nor evaluated. `sigmas` reports
    the sigma that the task's likelihood would turn into the same weight (flat lines in the
    sigma plots), so fixed and learned runs can be compared on one chart.

    Args:
        weights: task -> weight for every task in model.tasks.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        negative = {name: w for name, w in weights.items() if w < 0}
        if negative:
            # Named ClassName.argument.task: the command line turns it into the config key
            # and the file that set it.
            name, weight = next(iter(negative.items()))
            others = f" (and {list(negative)[1:]})" if len(negative) > 1 else ""
            raise ValueError(
                f"FixedWeighting.weights.{name} must be >= 0, got {weight}{others}: a weight "
                "scales its task's loss, and 0 turns the task off"
            )
        self.task_weights = {name: float(w) for name, w in weights.items()}

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        missing = sorted(set(self.likelihoods) - set(self.task_weights))
        # A zero weight for a task that a task-set preset left out says the same thing twice.
        extra = sorted(
            name
            for name, weight in self.task_weights.items()
            if name not in self.likelihoods and weight > 0
        )
        if missing or extra:
            raise ValueError(
                f"FixedWeighting.weights must give a weight to every active task "
                f"{sorted(self.likelihoods)} and no positive weight to another: missing "
                f"{missing}, not active {extra} (see model.tasks and model.active_tasks)"
            )
        if not any(self.task_weights.values()):
            raise ValueError("FixedWeighting.weights are all 0: at least one task must be on")
        # A buffer follows the model to its device, so logging the weights needs no copy.
        self.register_buffer(
            "weight_values",
            torch.tensor([self.task_weights[name] for name in self.likelihoods]),
            persistent=False,
        )

    def is_active(self, task: str) -> bool:
        return self.task_weights.get(task, 0.0) > 0.0

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        return sum(self.task_weights[name] * loss for name, loss in losses.items())

    def log_variances(self) -> dict[str, Tensor]:
        out = {}
        for name, weight in self.weights().items():
            scale, exponent = self.likelihoods[name].weight_exponent()
            out[name] = -torch.log(weight / scale) / exponent
        return out

    def weights(self) -> dict[str, Tensor]:
        return {
            name: self.weight_values[i]
            for i, name in enumerate(self.likelihoods)
            if self.task_weights[name] > 0
        }


__all__ = ["FixedWeighting"]
