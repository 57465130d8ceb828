"""The Jacobian-based methods, each one TorchJD weighting behind the mtlscene interface."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlscene.weighting.dual_cone import ActiveSetProjector
from mtlscene.weighting.jacobian import GramianJacobianWeighting, JacobianWeighting


def _torchjd(name: str, **kwargs):
    """Build ``torchjd.aggregation.<name>``; missing optional solvers give a clear error."""
    from torchjd import aggregation

    try:
        return getattr(aggregation, name)(**kwargs)
    except ImportError as error:
        raise ImportError(
            f"the {name} method needs TorchJD's optional solver packages: {error}"
        ) from error


class MGDAWeighting(GramianJacobianWeighting):
    """MGDA-UB (Sener & Koltun, NeurIPS 2018): the minimum-norm point of the gradients' hull.

    Args:
        epsilon: Frank-Wolfe stopping tolerance.
        max_iters: Frank-Wolfe iteration cap.
    """

    def __init__(self, epsilon: float = 1e-3, max_iters: int = 100) -> None:
        super().__init__(_torchjd("MGDAWeighting", epsilon=epsilon, max_iters=max_iters))


class PCGradWeighting(GramianJacobianWeighting):
    """PCGrad (Yu et al., NeurIPS 2020): project away conflicting gradient components.

    The projection order is random. TorchJD draws it from the global generator; here it
    draws from a generator of its own (seeded by ``seed``, saved in checkpoints), so every
    DDP rank uses the same order and the global random stream is left alone.

    Args:
        seed: seed of the projection-order generator.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__(_torchjd("PCGradWeighting"))
        self.seed = seed
        self.rng_state = torch.Generator().manual_seed(seed).get_state()

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            weights = super().jacobian_weights(jacobian)
            self.rng_state = torch.get_rng_state()
        return weights

    def get_extra_state(self) -> dict:
        return {"rng_state": self.rng_state}

    def set_extra_state(self, state: dict) -> None:
        self.rng_state = state["rng_state"]


class CAGradWeighting(GramianJacobianWeighting):
    """CAGrad (Liu et al., NeurIPS 2021): conflict-averse update near the mean gradient.

    Needs ``pip install "torchjd[cagrad]"`` (cvxpy, clarabel).

    Args:
        c: radius scale of the ball around the mean gradient (the paper: 0.4 or 0.5).
        norm_eps: guards the normalisation.
    """

    def __init__(self, c: float = 0.4, norm_eps: float = 1e-4) -> None:
        super().__init__(_torchjd("CAGradWeighting", c=c, norm_eps=norm_eps))


class IMTLGWeighting(GramianJacobianWeighting):
    """IMTL-G (Liu et al., ICLR 2021): equal projections of the update on every gradient."""

    def __init__(self) -> None:
        super().__init__(_torchjd("IMTLGWeighting"))


class AlignedMTLWeighting(GramianJacobianWeighting):
    """Aligned-MTL (Senushkin et al., CVPR 2023): align the gradients' principal components.

    Args:
        scale_mode: "min", "median" or "rmse" (TorchJD's eigenvalue scaling).
    """

    def __init__(self, scale_mode: str = "min") -> None:
        super().__init__(_torchjd("AlignedMTLWeighting", scale_mode=scale_mode))


class UPGradWeighting(GramianJacobianWeighting):
    """UPGrad (Quinton & Rey, 2024): project each gradient onto the dual cone, then average.

    Uses TorchJD's quadprog projector when ``quadprog`` and ``qpsolvers`` are installed and
    otherwise :class:`~mtlscene.weighting.dual_cone.ActiveSetProjector`, an exact solver for
    up to 12 tasks that needs neither.
    """

    def __init__(self) -> None:
        from torchjd.aggregation import UPGradWeighting as TorchJDUPGrad
        from torchjd.linalg import QuadprogProjector

        try:
            projector = QuadprogProjector()
        except ImportError:
            projector = ActiveSetProjector()
        super().__init__(TorchJDUPGrad(projector=projector))


class NashMTLWeighting(JacobianWeighting):
    """Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution between tasks.

    Needs ``pip install "torchjd[nash_mtl]"`` (cvxpy, ecos). Its solver state (warm start,
    step counter) lives in TorchJD's object and is not saved in checkpoints.

    Args:
        max_norm: cap on the norm of the update (0 disables it).
        update_weights_every: re-solve the bargaining problem every this many steps.
        optim_niter: iterations of the underlying solver.
    """

    def __init__(
        self, max_norm: float = 1.0, update_weights_every: int = 1, optim_niter: int = 20
    ) -> None:
        super().__init__()
        self.options = {
            "max_norm": max_norm,
            "update_weights_every": update_weights_every,
            "optim_niter": optim_niter,
        }
        self.aggregator = None
        _torchjd("NashMTL", n_tasks=2, **self.options)  # fail at construction, not mid-fit

    def jacobian_weights(self, jacobian: Tensor) -> Tensor:
        if self.aggregator is None:
            self.aggregator = _torchjd("NashMTL", n_tasks=len(self.tasks), **self.options)
        return self.aggregator.weighting(jacobian)


__all__ = [
    "AlignedMTLWeighting",
    "CAGradWeighting",
    "IMTLGWeighting",
    "MGDAWeighting",
    "NashMTLWeighting",
    "PCGradWeighting",
    "UPGradWeighting",
]
