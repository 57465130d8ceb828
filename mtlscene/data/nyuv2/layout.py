"""The NYUv2 files as the mtan preprocessing lays them out, and its 13 classes.

``root/{train,val}/{image,label,depth,normal}/{i}.npy`` with ``i = 0..N-1`` in every folder
(795 train, 654 "val", which is the NYUv2 test set). Per frame, at 288x384 (HxW):

* ``image``: float HxWx3 RGB in [0, 1];
* ``label``: HxW, float or integer, the 13 classes 0..12 below and -1 for unlabelled pixels;
* ``depth``: float HxW or HxWx1, metric depth in metres, 0 where the sensor gave none;
* ``normal``: float HxWx3 unit surface normals, all-zero where there is none.
"""

from __future__ import annotations

from pathlib import Path

NYUV2_FOLDERS: tuple[str, ...] = ("image", "label", "depth", "normal")
NYUV2_SPLITS: tuple[str, ...] = ("train", "val")
NYUV2_SHAPE: tuple[int, int] = (288, 384)
"""(height, width) of the mtan files."""

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
"""The 13-class NYUv2 labelling (Couprie et al. 2013) in label order 0..12."""

NYUV2_NUM_CLASSES = len(NYUV2_CLASS_NAMES)
NYUV2_IGNORE_LABEL = -1
"""Label of unlabelled pixels in the files (the loader maps it to the project's 255)."""


def frame_path(root: str | Path, split: str, folder: str, index: int) -> Path:
    """The file of one frame's ``folder`` (image, label, depth or normal)."""
    return Path(root) / split / folder / f"{index}.npy"


def is_nyuv2_root(root: str | Path) -> bool:
    """True when ``root`` looks like an mtan NYUv2 root (it has ``train/image/0.npy`` or
    ``val/image/0.npy``)."""
    return any(frame_path(root, split, "image", 0).is_file() for split in NYUV2_SPLITS)
