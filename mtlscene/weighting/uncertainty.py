"""Learned homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses

REGULARIZERS = ("log", "log1p")


class UncertaintyWeighting(LossWeighting):
    """One learnable ``s = log sigma^2`` per task; the term follows the task's likelihood.

    Per task with raw loss L (PAPER.md table):

    - gaussian: ``0.5 * exp(-s) * L + 0.5 * s``
    - laplace: ``exp(-s / 2) * L + 0.5 * s``
    - boltzmann: ``exp(-s) * L + 0.5 * s``

    With ``regularizer="log1p"`` the ``0.5 * s`` (= log sigma) term becomes
    ``log(1 + sigma^2)`` (Liebel & Koerner 2018), which keeps the total non-negative.

    Args:
        init_log_variance: initial s for every task, or a mapping task -> initial s.
        clamp: optional (min, max) bounds applied to s in the loss.
        regularizer: "log" (the paper) or "log1p".
        lr: learning rate of the s parameters (their own optimizer group, no weight decay);
            None uses the optimizer's.
    """

    def __init__(
        self,
        init_log_variance: float | Mapping[str, float] = 0.0,
        clamp: tuple[float, float] | None = None,
        regularizer: str = "log",
        lr: float | None = None,
    ) -> None:
        super().__init__()
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
        if clamp is not None and clamp[0] >= clamp[1]:
            raise ValueError(f"clamp must be (min, max) with min < max, got {clamp}")
        self.init_log_variance = init_log_variance
        self.clamp = tuple(clamp) if clamp is not None else None
        self.regularizer = regularizer
        self.lr = lr
        self.log_variance = nn.ParameterDict()

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        for name in self.likelihoods:
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

    def _s(self, name: str) -> Tensor:
        s = self.log_variance[name].float()
        return s.clamp(*self.clamp) if self.clamp is not None else s

    def _s_vector(self) -> Tensor:
        """s of every task, in the bound task order."""
        s = torch.stack(list(self.log_variance.values())).float()
        return s.clamp(*self.clamp) if self.clamp is not None else s

    def task_term(self, name: str, loss: Tensor) -> Tensor:
        """The weighted term of one task: ``c * exp(-k s) * L + regulariser(s)``."""
        s = self._s(name)
        scale, exponent = self.likelihoods[name].weight_exponent()
        regularizer = 0.5 * s if self.regularizer == "log" else nn.functional.softplus(s)
        return scale * torch.exp(-exponent * s) * loss + regularizer

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        # The sum of task_term over tasks, vectorised.
        s = self._s_vector()
        regularizer = 0.5 * s if self.regularizer == "log" else nn.functional.softplus(s)
        terms = self.scale * torch.exp(-self.exponent * s) * stack_losses(self, losses)
        return (terms + regularizer).sum()

    def log_variances(self) -> dict[str, Tensor]:
        return as_dict(self, self._s_vector())

    def sigmas(self) -> dict[str, Tensor]:
        return as_dict(self, torch.exp(0.5 * self._s_vector()))

    def weights(self) -> dict[str, Tensor]:
        return as_dict(self, self.scale * torch.exp(-self.exponent * self._s_vector()))
