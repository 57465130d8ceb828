"""The valid pixels of a dense prediction and its target, checked, as float64 pairs."""

from __future__ import annotations

from torch import Tensor


def masked_pairs(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``pred`` and ``target`` at the pixels ``mask`` marks valid, flattened, in float64.

    Args:
        pred: Prediction, BxHxW or Bx1xHxW (a single channel is squeezed).
        target: Ground truth, BxHxW.
        mask: Valid ground-truth pixels, BxHxW (any dtype; non-zero is valid).

    Raises:
        ValueError: the shapes disagree, naming all three.
    """
    if pred.ndim == target.ndim + 1 and pred.shape[1] == 1:
        pred = pred.squeeze(1)
    if pred.shape != target.shape or mask.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} must all be BxHxW (pred may be Bx1xHxW)"
        )
    mask = mask.bool()
    # Sums in float64 so that a split's totals (and their DDP reduction) are exact.
    return pred.detach().double()[mask], target.double()[mask]
