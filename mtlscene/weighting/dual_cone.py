"""A dependency-free solver for UPGrad's dual-cone projection (few tasks, exact)."""

from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor
from torchjd.linalg import DualConeProjector

MAX_TASKS = 12


class ActiveSetProjector(DualConeProjector):
    """Solves ``min_v v^T G v  s.t.  v >= u`` by enumerating the active sets.

    TorchJD's default projector needs the ``quadprog`` and ``qpsolvers`` packages. With a
    handful of tasks the quadratic program is tiny: for each set F of coordinates left free
    (the others held at their bound ``u``), ``G_FF v_F = -G_FB u_B`` gives the candidate, and
    the one meeting the KKT conditions (``v_F >= u_F``, ``(G v)_B >= 0``) is the unique optimum
    (G is made positive definite first, as TorchJD does). Runs in float64 on the CPU;
    2^m linear solves per row, so it refuses more than 12 tasks.

    Args:
        norm_eps: Gramians with a smaller trace are not normalised.
        reg_eps: added to the diagonal of the trace-normalised Gramian.
    """

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        self.norm_eps = norm_eps
        self.reg_eps = reg_eps

    def __call__(self, U: Tensor, G: Tensor) -> Tensor:
        m = G.shape[0]
        if m > MAX_TASKS:
            raise ValueError(
                f"ActiveSetProjector handles up to {MAX_TASKS} tasks, got {m}; install "
                'quadprog (pip install "torchjd[quadprog_projector]") for more'
            )
        gramian = G.detach().to("cpu", torch.float64)
        trace = gramian.diagonal().sum()
        gramian = gramian / trace if trace >= self.norm_eps else gramian
        gramian = gramian + self.reg_eps * torch.eye(m, dtype=torch.float64)
        rows = U.detach().to("cpu", torch.float64).reshape(-1, m)
        solved = torch.stack([_project(u, gramian) for u in rows])
        return solved.reshape(U.shape).to(device=G.device, dtype=G.dtype)


def _project(u: Tensor, gramian: Tensor, tol: float = 1e-9) -> Tensor:
    m = u.shape[0]
    best, best_violation = u.clone(), float("inf")
    for size in range(m + 1):
        for free in combinations(range(m), size):
            v = u.clone()
            if free:
                f = list(free)
                bound = [j for j in range(m) if j not in free]
                rhs = -gramian[f][:, bound] @ u[bound] if bound else torch.zeros(len(f)).double()
                v[f] = torch.linalg.solve(gramian[f][:, f], rhs)
            multipliers = gramian @ v
            fixed = [j for j in range(m) if j not in free]
            violation = max(
                [float((u[j] - v[j]).clamp(min=0)) for j in free]
                + [float((-multipliers[j]).clamp(min=0)) for j in fixed]
                + [0.0]
            )
            if violation <= tol:
                return v
            if violation < best_violation:
                best, best_violation = v, violation
    return best


__all__ = ["ActiveSetProjector"]
