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
    METRIC_DEPTH = "metric_depth"
    """Bx1xHxW depth in the data's unit (metres on NYUv2)."""
    SURFACE_NORMALS = "surface_normals"
    """Bx3xHxW unit surface normals."""


def class_logits_kind(label_set: str) -> str:
    """The kind of class logits over ``label_set`` ("trainid", "category", "nyuv2" or "custom").

    Only "trainid" and "category" logits feed CityScapes post-processing (clustering,
    panoptic fusion, the official evaluation)."""
    return f"class_logits/{label_set}"
