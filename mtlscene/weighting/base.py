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

    def forward(
        self, losses: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        """The total loss.

        Args:
            losses: task -> raw loss.
            present: optional task -> 0-dim bool tensor, False when this batch has no
                target for the task (e.g. no instance pixels): the task then adds nothing to
                this step's total (see :meth:`combine_present`).
        """
        unknown = set(losses) - set(self.likelihoods)
        if unknown:
            raise KeyError(f"losses for unbound tasks {sorted(unknown)}; call bind() first")
        # Weighting runs in float32 whatever the autocast state: exp(-s) and small losses
        # lose too much precision in half types.
        with torch.autocast(device_type=_device_type(losses), enabled=False):
            losses = {name: loss.float() for name, loss in losses.items()}
            if not present:
                return self.combine(losses)
            return self.combine_present(losses, present)

    @abstractmethod
    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The total loss from float32 per-task losses."""

    def combine_present(self, losses: Mapping[str, Tensor], present: Mapping[str, Tensor]):
        """The total when some tasks have no target in this batch.

        This default zeroes an absent task's loss, which removes its whole term from a
        weighting that is linear in the losses; a weighting with other per-task terms (such
        as a regulariser) overrides it to drop those too. ``torch.where`` keeps every
        parameter in the graph (with zero gradient), as DDP requires.
        """
        return self.combine(
            {
                name: torch.where(present[name], loss, torch.zeros_like(loss))
                if name in present
                else loss
                for name, loss in losses.items()
            }
        )

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
