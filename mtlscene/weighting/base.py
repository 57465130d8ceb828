"""Common interface of multi-task loss weighting strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from mtlscene.describe import RecordsInitArgs
from mtlscene.tasks.likelihood import Likelihood


class LossWeighting(RecordsInitArgs, nn.Module, ABC):
    """Combines per-task losses into one training objective.

    The model calls `set_per_pixel_tasks` and `bind` once with every task's
    likelihood, then calls the weighting with a mapping task -> raw loss each step.
    `weights` (and, where the method has them, `log_variances` and
    `sigmas`) report the current per-task values as detached tensors, so logging them
    costs no host synchronisation.

    Methods that weigh per-task *gradients* set ``requires_gradients = True``; the model then
    also passes its shared encoder, task heads and the encoder's output (see
    `JacobianWeighting`).
    """

    lr: float | None = None
    requires_gradients: bool = False
    # Whether forward, losses and this weighting can run as one compiled graph
    # (CaptureTrainingStep): False for methods that read host state on every step.
    # Gradient methods are never captured (they run one backward per task inside the step).
    capturable: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.likelihoods: dict[str, Likelihood] = {}
        self.per_pixel_tasks: frozenset[str] = frozenset()

    def set_per_pixel_tasks(self, tasks: Iterable[str]) -> None:
        """Declare the tasks whose head predicts a per-pixel sigma (``aleatoric: true``).

        Called by the model before `bind`. Such a task's loss is already a normalised
        likelihood: the methods built on homoscedastic uncertainty (learned and settled) give
        it weight 1 and no task-level s, since a second scale on top would count sigma twice.
        The other methods weigh it like any task; the loss value they read is the head's error
        (`mtlscene.uncertainty.aleatoric.nll_gradient_error_value`).
        """
        self.per_pixel_tasks = frozenset(tasks)

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
        present: Mapping[str, Tensor] | None = None,
        shared: nn.Module | None = None,
        heads: Mapping[str, nn.Module] | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        """The total loss.

        Args:
            losses: task -> raw loss.
            present: optional task -> 0-dim bool tensor, False when this batch has no
                target for the task (e.g. no instance pixels): the task then adds nothing to
                this step's total (see `combine_present`).
            shared: the shared encoder (gradient-based methods only).
            heads: the task heads (gradient-based methods only).
            representation: the shared encoder's output, in the losses' graph (used by
                gradient-based methods with ``rep_grad``).
        """
        unknown = set(losses) - set(self.likelihoods)
        if unknown:
            raise KeyError(f"losses for unbound tasks {sorted(unknown)}; call bind() first")
        # Weighting runs in float32 whatever the autocast state: exp(-s) and small losses
        # lose too much precision in half types.
        with torch.autocast(device_type=_device_type(losses), enabled=False):
            losses32 = {name: loss.float() for name, loss in losses.items()}
            if self.requires_gradients:
                if shared is None or heads is None:
                    raise ValueError(
                        f"{type(self).__name__} weighs per-task gradients: call it with the "
                        "shared module and the task heads (the model does this when "
                        "requires_gradients)"
                    )
                # An absent task's zero loss contributes a zero gradient.
                return self.combine_gradients(
                    _zero_absent(losses32, present),
                    shared,
                    heads,
                    present=present,
                    representation=representation,
                )
            if not present:
                return self.combine(losses32)
            return self.combine_present(losses32, present)

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
        return self.combine(_zero_absent(losses, present))

    def combine_gradients(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        present: Mapping[str, Tensor] | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        """The objective to backpropagate, for methods that look at per-task gradients.

        ``losses`` already has absent tasks' losses zeroed; ``present`` is passed on for
        methods with per-task terms beside the losses (a composed loss weighting);
        ``representation`` (the shared encoder's output) for methods that take the task
        gradients there.
        """
        raise NotImplementedError(f"{type(self).__name__} does not use per-task gradients")

    def on_train_epoch_end(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called by the model at the end of every training epoch (epoch-level state)."""

    def check_trainer_options(self, accumulate_grad_batches: int) -> None:  # noqa: B027
        """Raise when a trainer option cannot work with this method (default: all can)."""

    def prediction_scales(self) -> dict[str, Tensor]:
        """Factors the model multiplies a task's prediction by before its training loss.

        Empty for every method but uncertainty weighting with the exact Boltzmann
        likelihood, which scales a classifier's logits by ``1 / sigma^2`` (paper Eq. 8).
        """
        return {}

    @abstractmethod
    def weights(self) -> dict[str, Tensor]:
        """The effective weight multiplying each active task's raw loss (detached)."""

    def log_variances(self) -> dict[str, Tensor]:
        """``s = log sigma^2`` per active task, for methods that have one (else empty)."""
        return {}

    def sigmas(self) -> dict[str, Tensor]:
        """sigma per task for which `log_variances` reports an s."""
        return {name: torch.exp(0.5 * s) for name, s in self.log_variances().items()}

    def error_scales(self) -> dict[str, Tensor]:
        """Per task with an s: the loss its current weight is optimal for, ``1 / (2 k w)``.

        For the term ``c exp(-k s) L + s / 2`` that is ``exp(k s) / (2 c k)``: the loss scale
        the task-level sigma stands for (``sigma`` itself for the Laplace term, ``sigma^2``
        for the Gaussian term on an L1 loss; the running mean loss for settled weights).
        The model reads a regression head's task-level predictive distribution from it
        (``model.calibration``). Empty for methods without s: no such distribution.
        """
        weights = self.weights()
        return {
            name: 1.0 / (2.0 * self.likelihoods[name].weight_exponent()[1] * weights[name])
            for name in self.log_variances()
        }


def task_values(weighting: LossWeighting, losses: Mapping[str, Tensor]) -> list[Tensor]:
    """Losses as a list in the weighting's task order (every bound task must be present).

    Separate tensors, unlike `stack_losses`: the backward of one of them runs through
    its own task's graph only, where a slice of a stacked vector's would run through all.
    """
    missing = [name for name in weighting.tasks if name not in losses]
    if missing:
        raise KeyError(f"{type(weighting).__name__} needs a loss for every task; missing {missing}")
    return [losses[name] for name in weighting.tasks]


def stack_losses(weighting: LossWeighting, losses: Mapping[str, Tensor]) -> Tensor:
    """Losses as one vector in the weighting's task order (every bound task must be present)."""
    return torch.stack(task_values(weighting, losses))


def as_dict(weighting: LossWeighting, vector: Tensor) -> dict[str, Tensor]:
    """A per-task vector as task -> detached scalar tensor."""
    vector = vector.detach().clone()  # a snapshot: the state changes in place later
    return {name: vector[i] for i, name in enumerate(weighting.tasks)}


def _zero_absent(
    losses: Mapping[str, Tensor], present: Mapping[str, Tensor] | None
) -> dict[str, Tensor]:
    """Losses with those of absent tasks replaced by 0 (``torch.where``: no host sync, and
    every parameter stays in the graph, as DDP requires)."""
    present = present or {}
    return {
        name: torch.where(present[name], loss, torch.zeros_like(loss)) if name in present else loss
        for name, loss in losses.items()
    }


def _device_type(losses: Mapping[str, Tensor]) -> str:
    first = next(iter(losses.values()), None)
    return first.device.type if first is not None else "cpu"
