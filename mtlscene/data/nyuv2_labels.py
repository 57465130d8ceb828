"""The 13 semantic classes of NYUv2 as the MTL benchmark uses them (mtan's preprocessing).

The 13-class grouping of Couprie et al. (2013), label 0..12 in this order (the raw files
mark unlabelled pixels -1, which the loader maps to
:data:`mtlscene.data.labels.IGNORE_INDEX`).
"""

from __future__ import annotations

NYUV2_CLASS_NAMES: tuple[str, ...] = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "painting",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)
