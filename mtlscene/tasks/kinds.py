"""What a head's output *is*, so post-processing can find its inputs without task names.

A post-processor (instance clustering, panoptic fusion) asks for "a head producing trainId
class logits" rather than for the task called ``semantic``; any registered head declaring that
kind serves. A head declares its kind with the ``output_kind`` attribute (None: nothing that
post-processing reads).
"""

from __future__ import annotations


class HeadKind:
    """Names of head output kinds (plain strings, so external heads may add their own)."""

    CLASS_LOGITS_TRAINID = "class_logits/trainid"
    """BxCxHxW logits over the 19 CityScapes trainIds."""
    CLASS_LOGITS_CATEGORY = "class_logits/category"
    """BxCxHxW logits over the 7 CityScapes categories."""
    CENTROID_VECTORS = "centroid_vectors"
    """Bx2xHxW (dy, dx) from each pixel to its instance's centroid, in pixels."""
    DISPARITY = "disparity"
    """Bx1xHxW inverse depth (disparity) in pixels."""


def class_logits_kind(label_set: str) -> str:
    """The kind of class logits over ``label_set`` ("trainid" or "category")."""
    return f"class_logits/{label_set}"
