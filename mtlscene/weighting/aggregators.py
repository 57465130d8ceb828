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
    """MGDA (Sener & Koltun, NeurIPS 2018): the minimum-norm point of the gradients' hull.

    At the shared parameters by default; with ``rep_grad=True`` at the shared
    representation, which is the paper's MGDA-UB (it minimises an upper bound of the
    parameter-level norm; preset ``configs/weighting/mgda_ub.yaml``).

    Args:
        epsilon: Frank-Wolfe stopping tolerance.
        max_iters: Frank-Wolfe iteration cap.
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, epsilon: float = 1e-3, max_iters: int = 100, rep_grad: bool = False) -> None:
        super().__init__(
            _torchjd("MGDAWeighting", epsilon=epsilon, max_iters=max_iters), rep_grad=rep_grad
        )


class PCGradWeighting(GramianJacobianWeighting):
    """PCGrad (Yu et al., NeurIPS 2020): project away conflicting gradient components.

    The projection order is random. TorchJD draws it from the global generator; here it
    draws from a generator of its own (seeded by ``seed``, saved in checkpoints), so every
    DDP rank uses the same order and the global random stream is left alone.

    Args:
        seed: seed of the projection-order generator.
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, seed: int = 0, rep_grad: bool = False) -> None:
        super().__init__(_torchjd("PCGradWeighting"), rep_grad=rep_grad)
        self.seed = seed
        self.rng_state = torch.Generator().manual_seed(seed).get_state()

    def gramian_weights(self, gramian: Tensor) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            weights = super().gramian_weights(gramian)
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
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, c: float = 0.4, norm_eps: float = 1e-4, rep_grad: bool = False) -> None:
        super().__init__(_torchjd("CAGradWeighting", c=c, norm_eps=norm_eps), rep_grad=rep_grad)


class IMTLGWeighting(GramianJacobianWeighting):
    """IMTL-G (Liu et al., ICLR 2021): equal projections of the update on every gradient.

    Args:
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, rep_grad: bool = False) -> None:
        super().__init__(_torchjd("IMTLGWeighting"), rep_grad=rep_grad)


class AlignedMTLWeighting(GramianJacobianWeighting):
    """Aligned-MTL (Senushkin et al., CVPR 2023): align the gradients' principal components.

    Args:
        scale_mode: "min", "median" or "rmse" (TorchJD's eigenvalue scaling).
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, scale_mode: str = "min", rep_grad: bool = False) -> None:
        super().__init__(_torchjd("AlignedMTLWeighting", scale_mode=scale_mode), rep_grad=rep_grad)


class UPGradWeighting(GramianJacobianWeighting):
    """UPGrad (Quinton & Rey, 2024): project each gradient onto the dual cone, then average.

    Uses TorchJD's quadprog projector when ``quadprog`` and ``qpsolvers`` are installed and
    otherwise `ActiveSetProjector`, an exact solver for
    up to 12 tasks that needs neither.

    Args:
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(self, rep_grad: bool = False) -> None:
        from torchjd.aggregation import UPGradWeighting as TorchJDUPGrad
        from torchjd.linalg import QuadprogProjector

        try:
            projector = QuadprogProjector()
        except ImportError:
            projector = ActiveSetProjector()
        super().__init__(TorchJDUPGrad(projector=projector), rep_grad=rep_grad)


class NashMTLWeighting(JacobianWeighting):
    """Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution between tasks.

    Needs ``pip install "torchjd[nash_mtl]"`` (cvxpy, ecos). Its solver state (warm start,
    step counter) lives in TorchJD's object and is not saved in checkpoints.

    Args:
        max_norm: cap on the norm of the update (0 disables it).
        update_weights_every: re-solve the bargaining problem every this many steps.
        optim_niter: iterations of the underlying solver.
        rep_grad: take the task gradients at the shared representation (see
            `JacobianWeighting`).
    """

    def __init__(
        self,
        max_norm: float = 1.0,
        update_weights_every: int = 1,
        optim_niter: int = 20,
        rep_grad: bool = False,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
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
