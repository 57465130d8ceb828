"""Resizing an image and its label maps to the working size, exactly for label ids."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def resize_nearest(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize by index sampling (exact for any dtype, incl. int32 ids)."""
    height, width = array.shape[:2]
    rows = ((np.arange(size[0]) + 0.5) * height / size[0]).astype(np.int64)
    cols = ((np.arange(size[1]) + 0.5) * width / size[1]).astype(np.int64)
    return array[rows[:, None], cols[None, :]]


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Area-averaged downscale (or bilinear upscale) of an RGB uint8 image to (height, width)."""
    height, width = image.shape[:2]
    if (height, width) == tuple(size):
        return image
    shrink = size[0] < height and size[1] < width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[1]), int(size[0])), interpolation=interpolation)
