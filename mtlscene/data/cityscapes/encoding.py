"""CityScapes file encodings -> training targets (plain numpy/torch, no Lightning)."""

from __future__ import annotations

import numpy as np
import torch

from mtlscene.data.cityscapes.labels import THING_LABEL_IDS, VALID_LABEL_IDS, label_id_lut

INSTANCE_ID_OFFSET = 1000
"""instanceIds >= 1000 are ``labelId * 1000 + k``: one individual object instance."""


def invalid_label_ids(label_ids: np.ndarray) -> list[int]:
    """labelIds present in the array that are not in the official table (sorted)."""
    present = np.unique(label_ids)
    return [int(v) for v in present if int(v) not in VALID_LABEL_IDS]


def encode_semantic(label_ids: np.ndarray, label_set: str = "trainid") -> np.ndarray:
    """labelIds -> trainIds (or categories), void and ignored classes -> 255."""
    return label_id_lut(label_set)[label_ids.astype(np.int64).clip(0, 255)]


def decode_disparity(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-bit CityScapes disparity PNG -> (disparity in pixels, valid mask).

    ``d = (p - 1) / 256`` for ``p > 0``; ``p = 0`` marks pixels without a measurement.
    """
    raw = raw.astype(np.float32)
    valid = raw > 0
    return np.where(valid, (raw - 1.0) / 256.0, 0.0).astype(np.float32), valid


MAX_DISPARITY = (65535 - 1) / 256
"""The largest disparity (pixels) a 16-bit CityScapes PNG can hold."""


def encode_disparity(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Disparity in pixels -> CityScapes 16-bit PNG values ``round(d * 256 + 1)``, 0 invalid."""
    if np.any(valid & ~(disparity >= 0)) or np.any(valid & (disparity > MAX_DISPARITY)):
        raise ValueError(
            f"disparity must lie in [0, {MAX_DISPARITY:.2f}] px on valid pixels to fit a "
            "16-bit CityScapes PNG; lower the resolution or move objects further away"
        )
    raw = np.rint(disparity.astype(np.float64) * 256 + 1)
    return np.where(valid, raw, 0).astype(np.uint16)


def instance_offsets(instance_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel (dy, dx) vectors to the centroid of the pixel's instance, and the mask.

    Args:
        instance_ids: HxW CityScapes instanceIds (CPU) at the working resolution, after every
            geometric transform (so a flip negates dx and a scale rescales the vectors).

    Returns:
        offsets (float 2xHxW, zero outside instances) and mask (bool HxW, instanceId >= 1000).
    """
    # numpy, not torch: on one small CPU frame per call, torch's per-op overhead dominated
    # the loader's time. Sums of integer pixel coordinates are exact in float64, so the
    # centroids (and hence the vectors) do not depend on the summation order.
    ids = instance_ids.numpy()
    mask = ids >= INSTANCE_ID_OFFSET
    offsets = np.zeros((2, *ids.shape), dtype=np.float32)
    ys, xs = np.nonzero(mask)
    if ys.size:
        group = ids[ys, xs] - INSTANCE_ID_OFFSET
        if group.max() >= 1 << 16:  # not CityScapes ids (< 34000): renumber them densely
            _, group = np.unique(group, return_inverse=True)
        count = np.bincount(group)[group]
        for axis, coords in enumerate((ys, xs)):
            centroid = np.bincount(group, weights=coords.astype(np.float64))[group] / count
            offsets[axis, ys, xs] = (centroid - coords).astype(np.float32)
    return torch.from_numpy(offsets), torch.from_numpy(mask)


def instance_label_mismatches(instance_ids: np.ndarray, label_ids: np.ndarray) -> list[str]:
    """Ways an instanceIds array disagrees with its labelIds array (empty when consistent).

    An instanceId ``>= 1000`` encodes ``labelId * 1000 + k`` and must lie on pixels of that
    labelId, of a class that has instances; a smaller instanceId is the plain labelId.
    """
    ids = instance_ids.astype(np.int64)
    individual = ids >= INSTANCE_ID_OFFSET
    label_part = np.where(individual, ids // INSTANCE_ID_OFFSET, ids)
    messages = []
    if label_part.shape == label_ids.shape:
        differ = label_part != label_ids
        if differ.any():
            row, col = (int(v) for v in np.argwhere(differ)[0])
            messages.append(
                f"{int(differ.sum())} pixels disagree with the labelIds file (first at row "
                f"{row}, column {col}: instanceId {ids[row, col]} means labelId "
                f"{label_part[row, col]}, labelIds has {label_ids[row, col]}); the two files "
                "must come from the same annotation: re-extract both"
            )
    stuff = sorted(set(np.unique(label_part[individual]).tolist()) - THING_LABEL_IDS)
    if stuff:
        messages.append(
            f"has individual instances (ids >= 1000) of labelIds {stuff}, classes without "
            "instances in CityScapes; it is not an official *_gtFine_instanceIds.png"
        )
    return messages
