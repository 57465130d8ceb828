"""Common interface of multi-task loss weighting strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood


class LossWeighting(nn.Module, ABC):
    """Combines per-task losses into one training objective.

    The model calls :meth:`bind` once with every task's likelihood, then calls the
    weighting with a mapping task -> raw loss each step. :meth:`weights` (and, where the
    method has them, :meth:`log_variances` and :meth:`sigmas`) report the current per-task
    values as detached tensors, so logging them costs no host synchronisation.

    Methods that weigh per-task *gradients* set ``requires_gradients = True``; the model then
    also passes its shared encoder and task heads (see :class:`GradientWeighting`).
    """

    lr: float | None = None
    requires_gradients: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.likelihoods: dict[str, Likelihood] = {}

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        """Declare the tasks and their likelihoods (called by the model, not the config)."""
        self.likelihoods = {name: Likelihood.parse(lik) for name, lik in likelihoods.items()}

    @property
    def tasks(self) -> list[str]:
        """Bound task names, in the order every per-task vector uses."""
        return list(self.likelihoods)

    def is_active(self, task: str) -> bool:
        """Whether the task contributes to the loss (and so is computed and evaluated)."""
        return True

    def forward(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module | None = None,
        heads: Mapping[str, nn.Module] | None = None,
    ) -> Tensor:
        unknown = set(losses) - set(self.likelihoods)
        if unknown:
            raise KeyError(f"losses for unbound tasks {sorted(unknown)}; call bind() first")
        # Weighting runs in float32 whatever the autocast state: exp(-s) and small losses
        # lose too much precision in half types.
        with torch.autocast(device_type=_device_type(losses), enabled=False):
            losses32 = {name: loss.float() for name, loss in losses.items()}
            if not self.requires_gradients:
                return self.combine(losses32)
            if shared is None or heads is None:
                raise ValueError(
                    f"{type(self).__name__} weighs per-task gradients: call it with the shared "
                    "module and the task heads (the model does this when requires_gradients)"
                )
            return self.combine_gradients(losses32, shared, heads)

    @abstractmethod
    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The total loss from float32 per-task losses."""

    def combine_gradients(
        self, losses: Mapping[str, Tensor], shared: nn.Module, heads: Mapping[str, nn.Module]
    ) -> Tensor:
        """The objective to backpropagate, for methods that look at per-task gradients."""
        raise NotImplementedError(f"{type(self).__name__} does not use per-task gradients")

    def on_train_epoch_end(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called by the model at the end of every training epoch (epoch-level state)."""

    def check_trainer_options(self, accumulate_grad_batches: int) -> None:  # noqa: B027
        """Raise when a trainer option cannot work with this method (default: all can)."""

    @abstractmethod
    def weights(self) -> dict[str, Tensor]:
        """The effective weight multiplying each active task's raw loss (detached)."""

    def log_variances(self) -> dict[str, Tensor]:
        """``s = log sigma^2`` per active task, for methods that have one (else empty)."""
        return {}

    def sigmas(self) -> dict[str, Tensor]:
        """sigma per task for which :meth:`log_variances` reports an s."""
        return {name: torch.exp(0.5 * s) for name, s in self.log_variances().items()}


def stack_losses(weighting: LossWeighting, losses: Mapping[str, Tensor]) -> Tensor:
    """Losses as one vector in the weighting's task order (every bound task must be present)."""
    missing = [name for name in weighting.tasks if name not in losses]
    if missing:
        raise KeyError(f"{type(weighting).__name__} needs a loss for every task; missing {missing}")
    return torch.stack([losses[name] for name in weighting.tasks])


def as_dict(weighting: LossWeighting, vector: Tensor) -> dict[str, Tensor]:
    """A per-task vector as task -> detached scalar tensor."""
    vector = vector.detach().clone()  # a snapshot: the state changes in place later
    return {name: vector[i] for i, name in enumerate(weighting.tasks)}


def _device_type(losses: Mapping[str, Tensor]) -> str:
    first = next(iter(losses.values()), None)
    return first.device.type if first is not None else "cpu"
