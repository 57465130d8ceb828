"""GradNorm (Chen et al., ICML 2018): balance gradient norms at the last shared layer."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.likelihood import Likelihood
from mtlscene.weighting.base import LossWeighting, as_dict, stack_losses
from mtlscene.weighting.distributed import all_reduce_mean


class GradNormWeighting(LossWeighting):
    """Learned weights ``w_i`` pulled so that ``||grad_W (w_i L_i)||`` tracks each task's pace.

    With ``G_i = w_i ||grad_W L_i||`` at the last shared layer W, loss ratios
    ``Ltilde_i = L_i(t) / L_i(0)`` and relative inverse rates ``r_i = Ltilde_i / mean(Ltilde)``,
    the weights minimise ``sum_i |G_i - mean(G) r_i^alpha|`` (target held constant) while the
    network minimises ``sum_i w_i L_i`` (weights held constant). Before each step the weights
    are renormalised to sum to the number of tasks. The gradients at W and the losses are
    averaged over DDP processes first, so every rank takes the same weight step; the initial
    losses are buffers, saved in checkpoints with the weights.

    Args:
        alpha: restoring-force strength (the paper: 0.12 to 3; 1.5 for NYUv2).
        layer: dotted name of the shared module whose parameters are W (inside the
            backbone); default the last module with a weight matrix or kernel.
        lr: learning rate of the weights (their own optimizer group); None uses the
            optimizer's.
        min_weight: weights are clamped to at least this before renormalising.
    """

    requires_gradients = True

    def __init__(
        self,
        alpha: float = 1.5,
        layer: str | None = None,
        lr: float | None = None,
        min_weight: float = 1e-3,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.layer = layer
        self.lr = lr
        self.min_weight = min_weight

    def bind(self, likelihoods: Mapping[str, Likelihood | str]) -> None:
        super().bind(likelihoods)
        n = len(self.likelihoods)
        self.task_weights = nn.Parameter(torch.ones(n))
        self.register_buffer("initial_losses", torch.ones(n))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def layer_parameters(self, shared: nn.Module) -> list[nn.Parameter]:
        """Parameters of W, the last shared layer."""
        if self.layer is not None:
            try:
                module = shared.get_submodule(self.layer)
            except AttributeError as error:
                raise ValueError(
                    f"GradNormWeighting.layer={self.layer!r} is not a module of the backbone"
                ) from error
        else:
            candidates = [
                m
                for m in shared.modules()
                if isinstance(getattr(m, "weight", None), Tensor) and m.weight.ndim >= 2
            ]
            if not candidates:
                raise ValueError("GradNormWeighting: the backbone has no layer with a weight")
            module = candidates[-1]
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"GradNormWeighting: layer {self.layer!r} has no trainable weights")
        return params

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        raise ValueError("GradNormWeighting needs gradients: call it with shared= and heads=")

    def balance_loss(self, grad_norms: Tensor, losses: Tensor) -> Tensor:
        """The GradNorm objective of the weights, from per-task ``||grad_W L_i||`` and losses."""
        self.initial_losses.copy_(torch.where(self.initialised, self.initial_losses, losses))
        self.initialised.fill_(True)
        ratios = losses / self.initial_losses
        inverse_rates = ratios / ratios.mean()
        norms = self.task_weights * grad_norms
        target = (norms.mean() * inverse_rates**self.alpha).detach()
        return (norms - target).abs().sum()

    def combine_gradients(
        self,
        losses: Mapping[str, Tensor],
        shared: nn.Module,
        heads: Mapping[str, nn.Module],
        present: Mapping[str, Tensor] | None = None,
        representation: Tensor | None = None,  # unused: GradNorm measures at its own layer
    ) -> Tensor:
        values = stack_losses(self, losses)
        with torch.no_grad():
            self.task_weights.copy_(self.normalised_weights())
        params = self.layer_parameters(shared)
        rows = []
        for i in range(len(self.tasks)):
            grads = torch.autograd.grad(values[i], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]).float())
        grad_norms = all_reduce_mean(torch.stack(rows)).norm(dim=1)
        balance = self.balance_loss(grad_norms, all_reduce_mean(values.detach()))
        weighted = (self.task_weights.detach() * values).sum()
        # The value is the weighted loss; the balance term only moves the weights.
        return weighted + (balance - balance.detach())

    def normalised_weights(self) -> Tensor:
        """The weights clamped to ``min_weight`` and scaled to sum to the number of tasks."""
        clamped = self.task_weights.detach().clamp(min=self.min_weight)
        return clamped * (len(self.tasks) / clamped.sum())

    def weights(self) -> dict[str, Tensor]:
        # Normalised: what the next step will use (the optimizer step leaves them off-sum).
        return as_dict(self, self.normalised_weights())


__all__ = ["GradNormWeighting"]
