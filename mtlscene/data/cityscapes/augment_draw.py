"""One draw of the training augmentation's random parameters, shared by both of its paths.

The host path (`JointAugmentation`, albumentations in the
loader workers) and the device path (`DeviceAugmentation`,
batched torch after the transfer) apply the same random scale, horizontal flip, zero-padded
crop and colour jitter. An `AugmentDraw` is everything random about one sample's
augmentation, so the same draw can be fed to both paths and their outputs compared: the
host path records the draw albumentations made (`AugmentDraw.from_applied`), the
device path draws its own from a seeded generator (`AugmentDraw.sample`), with the
same distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

JITTER_PROB = 0.8
"""Probability that the colour jitter is applied (JointAugmentation's ColorJitter ``p``)."""

BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2
"""Codes of the colour jitter's operations in `AugmentDraw.order`."""

VECTOR_LENGTH = 13
"""Length of `AugmentDraw.vector` (the per-sample row a batch carries)."""


@dataclass(frozen=True)
class AugmentDraw:
    """The random parameters of one sample's augmentation.

    Attributes:
        scaled: (height, width) of the frame after the random scale, computed as
            albumentations does: ``int(H * s), int(W * s)``.
        flip: mirror the scaled frame left-right.
        pad: (top, left) zero padding of the scaled frame where it is smaller than the crop
            (centred, as albumentations' ``PadIfNeeded``).
        crop: (top, left) corner of the crop in the padded frame.
        jitter: (brightness, contrast, saturation) factors, or None when the colour jitter
            is not applied to this sample.
        order: the order the jitter's three operations run in (`BRIGHTNESS`,
            `CONTRAST`, `SATURATION`).
    """

    scaled: tuple[int, int]
    flip: bool
    pad: tuple[int, int]
    crop: tuple[int, int]
    jitter: tuple[float, float, float] | None = None
    order: tuple[int, int, int] = (BRIGHTNESS, CONTRAST, SATURATION)

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        shape: Sequence[int],
        crop_size: Sequence[int],
        scale_range: Sequence[float] | None,
        hflip_prob: float,
        color_jitter: float,
    ) -> AugmentDraw:
        """Draw the parameters for a ``shape`` (height, width) frame.

        The distribution is the host path's: a scale uniform in ``scale_range``, a flip
        with probability ``hflip_prob``, a crop corner uniform over the padded frame, and
        with probability `JITTER_PROB` jitter factors uniform in
        ``[max(0, 1 - color_jitter), 1 + color_jitter]`` applied in a random order.
        """
        height, width = int(shape[0]), int(shape[1])
        if scale_range is None:
            scaled = (height, width)
        else:
            scale = float(rng.uniform(scale_range[0], scale_range[1]))
            scaled = (int(height * scale), int(width * scale))
        flip = bool(rng.random() < hflip_prob)
        crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
        pad = (_pad_before(scaled[0], crop_h), _pad_before(scaled[1], crop_w))
        crop = (
            int(rng.integers(0, max(scaled[0], crop_h) - crop_h + 1)),
            int(rng.integers(0, max(scaled[1], crop_w) - crop_w + 1)),
        )
        if color_jitter <= 0 or rng.random() >= JITTER_PROB:
            return cls(scaled, flip, pad, crop)
        low, high = max(0.0, 1.0 - color_jitter), 1.0 + color_jitter
        factors = tuple(float(v) for v in rng.uniform(low, high, size=3))
        order = tuple(int(v) for v in rng.permutation(3))
        return cls(scaled, flip, pad, crop, factors, order)  # type: ignore[arg-type]

    @classmethod
    def from_applied(cls, applied: Sequence[tuple[str, dict]], shape: Sequence[int]) -> AugmentDraw:
        """The draw albumentations made, from a ``Compose(save_applied_params=True)`` record.

        Args:
            applied: the ``applied_transforms`` of JointAugmentation's two stages, in order.
            shape: (height, width) of the frame before the augmentation.
        """
        params = dict(applied)
        scaled = (int(shape[0]), int(shape[1]))
        if "RandomScale" in params:
            scale = params["RandomScale"]["scale"]
            scaled = (int(scaled[0] * scale), int(scaled[1] * scale))
        padding = params["PadIfNeeded"]
        left, top = params["RandomCrop"]["crop_coords"][:2]
        draw = cls(
            scaled,
            "HorizontalFlip" in params,
            (int(padding["pad_top"]), int(padding["pad_left"])),
            (int(top), int(left)),
        )
        jitter = params.get("ColorJitter")
        if jitter is None:
            return draw
        factors = (jitter["brightness"], jitter["contrast"], jitter["saturation"])
        # The fourth operation, hue, has range 0 here: a no-op wherever it runs.
        order = tuple(int(i) for i in jitter["order"] if i != 3)
        return cls(draw.scaled, draw.flip, draw.pad, draw.crop, factors, order)  # type: ignore[arg-type]

    def vector(self) -> np.ndarray:
        """The draw as a float64 row of `VECTOR_LENGTH` numbers (for batching).

        Layout: scaled height and width, flip, pad top and left, crop top and left, the
        three jitter factors (1 when not applied) and the order.
        """
        factors = self.jitter or (1.0, 1.0, 1.0)
        return np.array(
            [*self.scaled, self.flip, *self.pad, *self.crop, *factors, *self.order],
            dtype=np.float64,
        )


def _pad_before(size: int, minimum: int) -> int:
    """albumentations' centred padding: ``int((minimum - size) / 2)`` before, rest after."""
    return int((minimum - size) / 2.0) if size < minimum else 0
