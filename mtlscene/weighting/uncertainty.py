"""Learned homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.clamp import clamp_keeping_inward_gradient

REGULARIZERS = ("log", "log1p")
BOLTZMANN_FORMS = ("approximate", "exact")


class UncertaintyWeighting(LossWeighting):
    """One learnable ``s = log sigma^2`` per task; the term follows the task's likelihood.

    Per task with raw loss L (PAPER.md table):

    - gaussian: ``0.5 * exp(-s) * L + 0.5 * s``
    - laplace: ``exp(-s / 2) * L + 0.5 * s``
    - boltzmann: ``exp(-s) * L + 0.5 * s``

    With ``regularizer="log1p"`` the ``0.5 * s`` (= log sigma) term becomes
    ``log(1 + sigma^2)`` (Liebel & Koerner 2018), which keeps the total non-negative.

    The boltzmann row is the paper's approximation (its Eq. 10, exact as sigma -> 1). With
    ``boltzmann="exact"`` a classification task's term is instead the cross-entropy of the
    logits scaled by ``exp(-s) = 1 / sigma^2`` (Eq. 8): the model scales the logits
    (`prediction_scales`), the softmax normaliser takes the regulariser's place, and
    the logged training loss of that task is the scaled one.

    A task whose head predicts a per-pixel sigma (``aleatoric: true``, declared by the model
    through `set_per_pixel_tasks`) gets no s: its term is its loss with weight 1. Its
    NLL already learns the noise scale, per pixel; a task-level ``exp(-s)`` on top would be
    a second scale for the same noise (the per-pixel s can absorb any constant), and its
    ``0.5 s`` would have no likelihood to pair with. The other tasks keep their learned s.

    Args:
        init_log_variance: initial s for every task, or a mapping task -> initial s (tasks
            left out start at 0; naming a task that is not trained, or one with per-pixel
            sigma, is an error).
        clamp: optional (min, max) bounds applied to s in the loss; at a bound s still
            receives the gradient that points back inside.
        regularizer: "log" (the paper) or "log1p".
        lr: learning rate of the s parameters (their own optimizer group, no weight decay);
            None uses the optimizer's.
        boltzmann: "approximate" (the paper's Eq. 10, the default) or "exact" (Eq. 8).
    """

    def __init__(
        self,
        init_log_variance: float | Mapping[str, float] = 0.0,
        clamp: tuple[float, float] | None = None,
        regularizer: str = "log",
        lr: float | None = None,
        boltzmann: str = "approximate",
    ) -> None:
        super().__init__()
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
        if boltzmann not in BOLTZMANN_FORMS:
            raise ValueError(
                f"UncertaintyWeighting.boltzmann must be one of {BOLTZMANN_FORMS}, got "
                f"{boltzmann!r}"
            )
        self.boltzmann = boltzmann
        if clamp is not None and clamp[0] >= clamp[1]:
            raise ValueError(f"clamp must be (min, max) with min < max, got {clamp}")
        self.init_log_variance = init_log_variance
        self.clamp = tuple(clamp) if clamp is not None else None
        self.regularizer = regularizer
        self.lr = lr
        self.log_variance = nn.ParameterDict()

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        if isinstance(self.init_log_variance, Mapping):
            unknown = sorted(set(self.init_log_variance) - set(self.likelihoods))
            if unknown:
                raise ValueError(
                    f"UncertaintyWeighting.init_log_variance names unknown task(s) {unknown}; "
                    f"the model's tasks are {sorted(self.likelihoods)} (fix the spelling or "
                    "drop them)"
                )
            per_pixel = sorted(set(self.init_log_variance) & self.per_pixel_tasks)
            if per_pixel:
                raise ValueError(
                    f"UncertaintyWeighting.init_log_variance names {per_pixel}, whose heads "
                    "predict a per-pixel sigma (aleatoric: true) and so have weight 1 and no "
                    "task-level s; drop them from init_log_variance"
                )
        for name in self.likelihoods:
            if name in self.per_pixel_tasks:
                continue
            if isinstance(self.init_log_variance, Mapping):
                init = float(self.init_log_variance.get(name, 0.0))
            else:
                init = float(self.init_log_variance)
            self.log_variance[name] = nn.Parameter(torch.tensor(init, dtype=torch.float32))
        # The likelihood constants as vectors, so the loss and the logged values take a few
        # vector ops instead of several scalar ops per task (each a kernel launch on a GPU).
        constants = [self.likelihoods[name].weight_exponent() for name in self.likelihoods]
        self.register_buffer("scale", torch.tensor([c[0] for c in constants]), persistent=False)
        self.register_buffer("exponent", torch.tensor([c[1] for c in constants]), persistent=False)
        # With the exact Boltzmann form those tasks' losses already hold s (through the
        # scaled logits), and a per-pixel task has none: their term is the loss itself.
        per_pixel = [name in self.per_pixel_tasks for name in self.likelihoods]
        explicit = [
            not (self._is_exact(n) or p) for n, p in zip(self.likelihoods, per_pixel, strict=True)
        ]
        self.register_buffer("explicit", torch.tensor(explicit), persistent=False)
        self.register_buffer("per_pixel", torch.tensor(per_pixel), persistent=False)
        # The stand-in s of a per-pixel task in the s vector (it never reaches a weight).
        self.register_buffer("no_s", torch.zeros(()), persistent=False)

    def _is_exact(self, name: str) -> bool:
        return (
            self.boltzmann == "exact"
            and self.likelihoods[name] == Likelihood.BOLTZMANN
            and name not in self.per_pixel_tasks
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Checkpoints from before per-pixel tasks had weight 1 hold an s for them: unused.
        for name in self.per_pixel_tasks:
            state_dict.pop(f"{prefix}log_variance.{name}", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def prediction_scales(self) -> dict[str, Tensor]:
        return {name: torch.exp(-self._s(name)) for name in self.tasks if self._is_exact(name)}

    def _s(self, name: str) -> Tensor:
        s = self.log_variance[name].float()
        return clamp_keeping_inward_gradient(s, *self.clamp) if self.clamp is not None else s

    def _s_vector(self) -> Tensor:
        """s of every task, in the bound task order (a stand-in 0 for per-pixel tasks)."""
        if self.per_pixel_tasks:
            values = [
                self.log_variance[n] if n in self.log_variance else self.no_s for n in self.tasks
            ]
        else:
            values = list(self.log_variance.values())
        s = torch.stack(values).float()
        return clamp_keeping_inward_gradient(s, *self.clamp) if self.clamp is not None else s

    def task_term(self, name: str, loss: Tensor) -> Tensor:
        """The weighted term of one task: ``c * exp(-k s) * L + regulariser(s)``."""
        if self._is_exact(name) or name in self.per_pixel_tasks:
            return loss  # logits already scaled by exp(-s), or a per-pixel NLL (weight 1)
        s = self._s(name)
        scale, exponent = self.likelihoods[name].weight_exponent()
        regularizer = 0.5 * s if self.regularizer == "log" else nn.functional.softplus(s)
        return scale * torch.exp(-exponent * s) * loss + regularizer

    def _terms(self, losses: Mapping[str, Tensor]) -> Tensor:
        """task_term of every task as one vector (a few vector ops, not several per task)."""
        s = self._s_vector()
        losses = stack_losses(self, losses)
        regularizer = 0.5 * s if self.regularizer == "log" else nn.functional.softplus(s)
        weighted = self.scale * torch.exp(-self.exponent * s) * losses + regularizer
        return torch.where(self.explicit, weighted, losses)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        return self._terms(losses).sum()

    def combine_present(self, losses: Mapping[str, Tensor], present: Mapping[str, Tensor]):
        # The whole term goes, regulariser included: alone it would push s (and sigma)
        # down on every batch without targets for that task.
        terms = self._terms(losses)
        keep = torch.stack(
            [
                present[name] if name in present else torch.ones((), dtype=torch.bool)
                for name in self.tasks
            ]
        ).to(terms.device)
        return torch.where(keep, terms, torch.zeros_like(terms)).sum()

    def _learned_only(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        return {n: v for n, v in values.items() if n not in self.per_pixel_tasks}

    def log_variances(self) -> dict[str, Tensor]:
        """s of every task that has one (not the per-pixel tasks)."""
        return self._learned_only(as_dict(self, self._s_vector()))

    def sigmas(self) -> dict[str, Tensor]:
        return self._learned_only(as_dict(self, torch.exp(0.5 * self._s_vector())))

    def weights(self) -> dict[str, Tensor]:
        learned = self.scale * torch.exp(-self.exponent * self._s_vector())
        return as_dict(self, torch.where(self.per_pixel, torch.ones_like(learned), learned))
