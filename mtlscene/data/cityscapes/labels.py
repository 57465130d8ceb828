"""The official CityScapes label table, turned into lookup tables for target encoding.

The table itself comes from ``cityscapesscripts.helpers.labels`` (the benchmark's own
definition) rather than being retyped here, so ids, trainIds, categories and colours can
never drift from what the official evaluation scripts expect.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS

from mtlscene.data.conventions import IGNORE_INDEX  # noqa: E402  (re-exported: the label table's void)

"""Target value for pixels that are not evaluated (void classes, padding)."""

MAX_LABEL_ID = 33
"""Largest labelId that appears in ``*_gtFine_labelIds.png`` (license plate, -1, never does)."""

# CityScapes' seven non-void categories, in the order of their official categoryId (1..7).
CATEGORY_NAMES: tuple[str, ...] = tuple(
    sorted(
        {(lab.categoryId, lab.category) for lab in _OFFICIAL_LABELS if lab.categoryId > 0},
    )[i][1]
    for i in range(7)
)

TRAIN_CLASS_NAMES: tuple[str, ...] = tuple(
    lab.name
    for lab in sorted(_OFFICIAL_LABELS, key=lambda lab: lab.trainId)
    if 0 <= lab.trainId < IGNORE_INDEX
)

# Label ids of the classes that have individual instances ("things") and are evaluated.
INSTANCE_LABEL_IDS: tuple[int, ...] = tuple(
    lab.id for lab in _OFFICIAL_LABELS if lab.hasInstances and not lab.ignoreInEval
)
INSTANCE_TRAIN_IDS: tuple[int, ...] = tuple(
    lab.trainId for lab in _OFFICIAL_LABELS if lab.hasInstances and not lab.ignoreInEval
)

THING_LABEL_IDS: frozenset[int] = frozenset(
    lab.id for lab in _OFFICIAL_LABELS if lab.hasInstances and 0 <= lab.id <= MAX_LABEL_ID
)
"""Every class that has individual instances, evaluated or not (caravan and trailer too)."""

VALID_LABEL_IDS: frozenset[int] = frozenset(
    lab.id for lab in _OFFICIAL_LABELS if 0 <= lab.id <= MAX_LABEL_ID
)


def num_classes(label_set: str) -> int:
    """Number of evaluated classes for ``label_set`` ("trainid": 19, "category": 7)."""
    return len(class_names(label_set))


def class_names(label_set: str) -> tuple[str, ...]:
    """Readable class names in target-index order for ``label_set``."""
    if label_set == "trainid":
        return TRAIN_CLASS_NAMES
    if label_set == "category":
        return CATEGORY_NAMES
    raise ValueError(
        f"unknown label_set {label_set!r}: use 'trainid' (19 classes) or 'category' (7)"
    )


@cache
def label_id_lut(label_set: str) -> np.ndarray:
    """A 256-entry table mapping labelId -> target index (trainId or category - 1, else 255)."""
    class_names(label_set)  # validates label_set
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in _OFFICIAL_LABELS:
        if not 0 <= lab.id <= MAX_LABEL_ID:
            continue
        if label_set == "trainid":
            if 0 <= lab.trainId < IGNORE_INDEX:
                lut[lab.id] = lab.trainId
        elif lab.categoryId > 0:
            lut[lab.id] = lab.categoryId - 1
    return lut


@cache
def train_id_to_label_id(label_set: str = "trainid") -> np.ndarray:
    """Inverse table: target index -> labelId, as the official result PNGs expect."""
    inverse = np.zeros(256, dtype=np.uint8)
    for lab in _OFFICIAL_LABELS:
        if label_set == "trainid" and 0 <= lab.trainId < IGNORE_INDEX and not lab.ignoreInEval:
            inverse[lab.trainId] = lab.id
    if label_set == "category":
        for lab in _OFFICIAL_LABELS:
            if lab.categoryId > 0 and inverse[lab.categoryId - 1] == 0 and not lab.ignoreInEval:
                inverse[lab.categoryId - 1] = lab.id
    return inverse


@cache
def palette(label_set: str = "trainid") -> np.ndarray:
    """RGB colours (N+1 x 3, uint8) of the target classes; the last row is for ignore."""
    names = class_names(label_set)
    colours = np.zeros((len(names) + 1, 3), dtype=np.uint8)
    for lab in _OFFICIAL_LABELS:
        if label_set == "trainid" and 0 <= lab.trainId < len(names):
            colours[lab.trainId] = lab.color
    if label_set == "category":
        for index in range(len(names)):
            first = next(lab for lab in _OFFICIAL_LABELS if lab.categoryId == index + 1)
            colours[index] = first.color
    return colours


def label_id_palette() -> np.ndarray:
    """RGB colour of every labelId 0..33 (the official colour-coded ground-truth palette)."""
    colours = np.zeros((MAX_LABEL_ID + 1, 3), dtype=np.uint8)
    for lab in _OFFICIAL_LABELS:
        if 0 <= lab.id <= MAX_LABEL_ID:
            colours[lab.id] = lab.color
    return colours


def label_id(name: str) -> int:
    """The official labelId of a class name, e.g. ``label_id("car") == 26``."""
    for lab in _OFFICIAL_LABELS:
        if lab.name == name:
            return lab.id
    raise KeyError(f"{name!r} is not a CityScapes class name")
