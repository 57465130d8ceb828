"""NYUv2 training augmentation as nash-mtl and FAMO do it: random scale-crop and flip.

A scale ``s`` is drawn from {1.0, 1.2, 1.5}; a crop of ``H/s x W/s`` at a random position is
resized back to ``H x W`` (the image bilinearly with ``align_corners=True``, the targets by
nearest neighbour), so the scene looks ``s`` times closer and its depth is divided by
``s``. A horizontal flip with probability 0.5 mirrors the camera's x axis, so it negates the
normals' x component.

One difference from nash-mtl: it resizes normals bilinearly, which blends neighbouring
vectors into non-unit ones (and mixes valid with all-zero invalid normals); here they are
sampled by nearest neighbour like the other targets, so every vector stays a unit vector
and invalid pixels stay invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SCALES: tuple[float, ...] = (1.0, 1.2, 1.5)


@dataclass(frozen=True)
class ScaleCrop:
    """One draw of the augmentation: zoom ``scale``, crop corner (top, left), flip."""

    scale: float
    top: int
    left: int
    flip: bool


class ScaleCropFlip:
    """Random scale-crop and horizontal flip of an NYUv2 sample (a dict of tensors).

    Args:
        scales: zoom factors drawn uniformly; (1.0,) disables the scale-crop.
        hflip_prob: probability of a horizontal flip.
    """

    def __init__(self, scales: Sequence[float] = SCALES, hflip_prob: float = 0.5) -> None:
        if not scales or min(scales) < 1.0:
            raise ValueError(f"scales must be factors >= 1 (zooming in), got {list(scales)}")
        self.scales = tuple(float(s) for s in scales)
        self.hflip_prob = float(hflip_prob)

    def sample(self, rng: np.random.Generator, height: int, width: int) -> ScaleCrop:
        """Draw the scale, the crop position and the flip for an ``height x width`` frame."""
        scale = self.scales[int(rng.integers(len(self.scales)))]
        crop_h, crop_w = int(height / scale), int(width / scale)
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        return ScaleCrop(scale, top, left, bool(rng.random() < self.hflip_prob))

    def __call__(self, sample: dict, params: ScaleCrop) -> dict:
        """Apply ``params`` to ``image`` (3xHxW), ``semantic``, ``depth``, ``depth_mask``,
        ``normal`` (3xHxW) and ``normal_mask``; other keys pass through."""
        out = dict(sample)
        height, width = sample["image"].shape[-2:]
        if params.scale != 1.0:
            crop_h, crop_w = int(height / params.scale), int(width / params.scale)
            rows = slice(params.top, params.top + crop_h)
            cols = slice(params.left, params.left + crop_w)

            def nearest(tensor: torch.Tensor) -> torch.Tensor:
                crop = tensor[..., rows, cols]
                batch = crop[None] if crop.ndim == 3 else crop[None, None]
                resized = F.interpolate(batch.float(), size=(height, width), mode="nearest")
                return resized[0] if crop.ndim == 3 else resized[0, 0]

            image = sample["image"][:, rows, cols][None]
            out["image"] = F.interpolate(
                image, size=(height, width), mode="bilinear", align_corners=True
            )[0]
            out["semantic"] = nearest(sample["semantic"]).long()
            # Zooming in by s brings the scene s times closer.
            out["depth"] = nearest(sample["depth"]) / params.scale
            out["depth_mask"] = nearest(sample["depth_mask"]) > 0.5
            out["normal"] = nearest(sample["normal"])
            out["normal_mask"] = nearest(sample["normal_mask"]) > 0.5
        if params.flip:
            for key in ("image", "semantic", "depth", "depth_mask", "normal", "normal_mask"):
                out[key] = torch.flip(out[key], dims=[-1])
            # Mirroring the image mirrors the camera's x axis (image right).
            out["normal"] = out["normal"] * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
        return out
