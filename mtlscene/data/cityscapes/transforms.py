"""Joint augmentation of an image and all its targets, built with albumentations.

The pipeline is built in code from plain config values (floats and tuples), because
albumentations transform objects do not survive LightningCLI's config parsing.
Targets travel as float32 masks with nearest-neighbour resampling, so label ids, instance
ids and disparities are moved, never blended. Each call reports the random parameters it
drew (`AugmentDraw`), which is how the device-side path
(`mtlscene.data.cityscapes.device_augment`) is checked against this one for the same draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

# albumentations checks PyPI for updates on import; never touch the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mtlscene.data.cityscapes.augment_draw import AugmentDraw  # noqa: E402


@dataclass
class AugmentedSample:
    """An augmented image, its masks in input order, the applied horizontal scale, and the
    random parameters that were drawn."""

    image: np.ndarray
    masks: list[np.ndarray]
    scale: float
    draw: AugmentDraw


class JointAugmentation:
    """Random scale, crop (with padding) and horizontal flip applied to image and targets.

    Args:
        crop_size: (height, width) of the output; padding fills masks with 0 (void label,
            no instance, invalid disparity).
        scale_range: (min, max) random scale factor, or None for no scaling.
        hflip_prob: probability of a horizontal flip.
        color_jitter: strength of brightness/contrast/saturation jitter (0 disables).
    """

    def __init__(
        self,
        crop_size: Sequence[int],
        scale_range: Sequence[float] | None = (0.75, 1.25),
        hflip_prob: float = 0.5,
        color_jitter: float = 0.2,
    ) -> None:
        height, width = (int(v) for v in crop_size)
        self.scale_flip = A.Compose(
            (
                []
                if scale_range is None
                else [
                    A.RandomScale(
                        scale_limit=(scale_range[0] - 1.0, scale_range[1] - 1.0),
                        interpolation=cv2.INTER_LINEAR,
                        mask_interpolation=cv2.INTER_NEAREST,
                        p=1.0,
                    )
                ]
            )
            + [A.HorizontalFlip(p=hflip_prob)],
            save_applied_params=True,  # read back as an AugmentDraw (no other effect)
        )
        self.crop = A.Compose(
            [
                A.PadIfNeeded(height, width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
                A.RandomCrop(height, width),
            ]
            + (
                [A.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0, p=0.8)]
                if color_jitter > 0
                else []
            ),
            save_applied_params=True,
        )

    def set_random_seed(self, seed: int) -> None:
        """Seed both stages (the dataset does this per sample from torch's RNG, so runs
        seeded with ``seed_everything(workers=True)`` are reproducible)."""
        self.scale_flip.set_random_seed(seed)
        self.crop.set_random_seed(seed + 1)

    def __call__(self, image: np.ndarray, masks: list[np.ndarray]) -> AugmentedSample:
        width_before = image.shape[1]
        out = self.scale_flip(image=image, masks=masks)
        applied = list(out["applied_transforms"])
        # The scale is read back from the shape: albumentations does not report it, and
        # disparities and offsets must be multiplied by exactly the horizontal factor used.
        scale = out["image"].shape[1] / width_before
        out = self.crop(image=out["image"], masks=list(out["masks"]))
        applied += out["applied_transforms"]
        return AugmentedSample(
            out["image"],
            [np.asarray(m) for m in out["masks"]],
            scale,
            AugmentDraw.from_applied(applied, image.shape[:2]),
        )
