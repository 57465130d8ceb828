"""Instance centroid-offset regression error in pixels."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class OffsetError(Metric):
    """Mean L1 error of the predicted pixel-to-centroid vectors over instance pixels.

    The error of one pixel is the L1 norm of the 2-vector difference,
    ``|dy - dy^| + |dx - dx^|``, which is exactly the per-pixel term of the instance loss
    ``||x_n - x^_n||_1``; ``compute()`` returns its mean over all instance pixels as ``mae``
    (the paper's "Instance Mean Error [px]"). Sums are float64 and summed across processes, so
    the value is exact under DDP; it is nan when no instance pixel was accumulated.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: Tensor
    pixel_count: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "error_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "pixel_count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: Predicted (dy, dx) offsets in pixels, Bx2xHxW.
            target: Ground-truth (dy, dx) offsets in pixels, Bx2xHxW.
            mask: Pixels that belong to an instance, bool BxHxW.
        """
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 2:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be Bx2xHxW"
            )
        if mask.shape != (pred.shape[0], *pred.shape[2:]):
            raise ValueError(f"mask {tuple(mask.shape)} must be BxHxW for pred {tuple(pred.shape)}")
        error = (pred.detach().double() - target.double()).abs().sum(dim=1)
        mask = mask.bool()
        self.error_sum += error[mask].sum()
        self.pixel_count += mask.sum()

    def compute(self) -> dict[str, Tensor]:
        """``mae``: mean L1 offset error in pixels (float32; nan if nothing was accumulated)."""
        if self.pixel_count == 0:
            return {"mae": torch.tensor(torch.nan, device=self.error_sum.device)}
        return {"mae": (self.error_sum / self.pixel_count).float()}
