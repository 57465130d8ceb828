"""What a Kinect frame and its annotation lack: holes in the depth, unlabelled pixels."""

from __future__ import annotations

import numpy as np


def kinect_holes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """0-3 elliptic blobs (True) where the sensor returned no depth."""
    height, width = shape
    rows, cols = np.ogrid[:height, :width]
    holes = np.zeros(shape, bool)
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.02, 0.07) * height, rng.uniform(0.02, 0.07) * width
        holes |= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
    return holes


def unlabelled_boundaries(label: np.ndarray) -> np.ndarray:
    """Labels with the pixels on either side of a class boundary set to -1, as annotators
    leave the outlines of their polygons unlabelled."""
    edge = np.zeros(label.shape, bool)
    vertical = label[1:, :] != label[:-1, :]
    horizontal = label[:, 1:] != label[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return np.where(edge, -1, label)
