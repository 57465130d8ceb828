"""Common interface of multi-task loss weighting strategies."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.describe import RecordsInitArgs
from mtlscene.tasks.likelihood import Likelihood


class LossWeighting(RecordsInitArgs, nn.Module, ABC):
    """Combines per-task losses into one training objective.

    The model calls :meth:`bind` once with every task's likelihood, then calls the
    weighting with a mapping task -> raw loss each step. :meth:`sigmas` and :meth:`weights`
    report the current per-task sigma and effective weight for logging.
    """

    lr: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.likelihoods: dict[str, Likelihood] = {}

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        """Declare the tasks and their likelihoods (called by the model, not the config)."""
        self.likelihoods = {name: Likelihood.parse(lik) for name, lik in likelihoods.items()}

    def is_active(self, task: str) -> bool:
        """Whether the task contributes to the loss (and so is computed and evaluated)."""
        return True

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        unknown = set(losses) - set(self.likelihoods)
        if unknown:
            raise KeyError(f"losses for unbound tasks {sorted(unknown)}; call bind() first")
        # Weighting runs in float32 whatever the autocast state: exp(-s) and small losses
        # lose too much precision in half types.
        with torch.autocast(device_type=_device_type(losses), enabled=False):
            return self.combine({name: loss.float() for name, loss in losses.items()})

    @abstractmethod
    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The total loss from float32 per-task losses."""

    @abstractmethod
    def log_variances(self) -> dict[str, float]:
        """``s = log sigma^2`` per active task."""

    def sigmas(self) -> dict[str, float]:
        """sigma per active task."""
        return {name: math.exp(0.5 * s) for name, s in self.log_variances().items()}

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """The effective weight multiplying each active task's raw loss."""


def _device_type(losses: Mapping[str, Tensor]) -> str:
    first = next(iter(losses.values()), None)
    return first.device.type if first is not None else "cpu"
