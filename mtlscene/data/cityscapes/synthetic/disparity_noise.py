"""Stereo-like disparity noise with a known per-pixel standard deviation (an option).

Real stereo disparity is noisier far away (fewer pixels per metre, weaker matches) and on
textureless surfaces (flat road, sky-coloured walls: the matcher has nothing to lock on).
With ``DisparityNoise`` the generator adds zero-mean Gaussian noise of standard deviation

    sigma = base + distance_gain * min(Z / far, 1) + textureless_gain * (1 - texture)

(parameters in disparity pixels at 256 px width, scaled by ``width / 256`` like disparity
itself) to every valid disparity, where ``Z`` is
the metric depth and ``texture`` in [0, 1] the local image gradient (3x3 mean of the
luminance gradient magnitude over ``texture_scale``, clipped at 1). The noisy disparity is
clipped at 1/256 px so that a valid pixel stays valid, and ``sigma`` is written beside the
data: ``disparity_std/{split}/{city}/{stem}_disparity_std.png`` in the disparity encoding
(``p = sigma * 256 + 1``, 0 where the disparity is invalid; read it with
`mtlscene.data.cityscapes.encoding.decode_disparity`). It is the ground truth of the aleatoric
uncertainty checks: a depth head with ``aleatoric: true`` should rank pixels like it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

STD_FOLDER = "disparity_std"
STD_SUFFIX = "_disparity_std.png"


@dataclass(frozen=True)
class DisparityNoise:
    """Parameters of the noise (pixels of disparity at 256 px image width).

    Args:
        base: sigma everywhere.
        distance_gain: extra sigma at depth ``far`` and beyond (linear in depth).
        far: depth in metres where the distance term saturates.
        textureless_gain: extra sigma on a perfectly flat (gradient-free) surface.
        texture_scale: luminance gradient (0..1 grey levels per pixel) counted as full texture.
    """

    base: float = 0.05
    distance_gain: float = 0.3
    far: float = 60.0
    textureless_gain: float = 0.6
    texture_scale: float = 0.08

    def as_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}


def texture_map(image: np.ndarray, scale: float) -> np.ndarray:
    """Local texture in [0, 1]: the 3x3 mean of the luminance gradient magnitude / scale."""
    grey = image.astype(np.float64).mean(axis=-1) / 255.0
    dy, dx = np.gradient(grey)
    magnitude = np.hypot(dy, dx)
    padded = np.pad(magnitude, 1, mode="edge")
    height, width = magnitude.shape
    local = sum(padded[r : r + height, c : c + width] for r in range(3) for c in range(3)) / 9.0
    return np.clip(local / scale, 0.0, 1.0)


def disparity_std(
    image: np.ndarray,
    disparity: np.ndarray,
    valid: np.ndarray,
    focal_baseline: float,
    noise: DisparityNoise,
) -> np.ndarray:
    """The per-pixel sigma (float32 HxW, 0 where invalid) of the module's formula."""
    depth = np.where(valid, focal_baseline / np.maximum(disparity, 1e-6), 0.0)
    texture = texture_map(image, noise.texture_scale)
    sigma = (disparity.shape[1] / 256.0) * (
        noise.base
        + noise.distance_gain * np.minimum(depth / noise.far, 1.0)
        + noise.textureless_gain * (1.0 - texture)
    )
    return np.where(valid, sigma, 0.0).astype(np.float32)


def add_disparity_noise(
    rng: np.random.Generator,
    image: np.ndarray,
    disparity: np.ndarray,
    valid: np.ndarray,
    focal_baseline: float,
    noise: DisparityNoise,
) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy disparity, sigma)``, both float32 HxW; invalid pixels stay 0."""
    sigma = disparity_std(image, disparity, valid, focal_baseline, noise)
    noisy = disparity + sigma * rng.standard_normal(disparity.shape)
    noisy = np.where(valid, np.maximum(noisy, 1.0 / 256.0), 0.0).astype(np.float32)
    return noisy, sigma
