"""Colour palettes and colour jitter shared by the painters and the renderer (value noise:
`mtlscene.data.procedural.Noise`)."""

from __future__ import annotations

import numpy as np

CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.85],
        [0.6, 0.62, 0.65],
        [0.08, 0.08, 0.09],
        [0.3, 0.3, 0.32],
        [0.6, 0.08, 0.07],
        [0.1, 0.2, 0.5],
        [0.07, 0.1, 0.25],
        [0.15, 0.3, 0.2],
        [0.7, 0.65, 0.5],
        [0.85, 0.7, 0.2],
    ],
    dtype=np.float32,
)
BUILDING_COLOURS = np.array(
    [
        [0.72, 0.66, 0.55],
        [0.6, 0.6, 0.6],
        [0.55, 0.3, 0.22],
        [0.85, 0.83, 0.78],
        [0.8, 0.72, 0.5],
        [0.45, 0.42, 0.4],
        [0.62, 0.5, 0.42],
    ],
    dtype=np.float32,
)
CLOTHES = np.array(
    [
        [0.1, 0.1, 0.12],
        [0.2, 0.22, 0.35],
        [0.5, 0.1, 0.1],
        [0.75, 0.75, 0.72],
        [0.35, 0.3, 0.25],
        [0.15, 0.3, 0.2],
        [0.6, 0.5, 0.2],
        [0.3, 0.3, 0.3],
    ],
    dtype=np.float32,
)
VEHICLE_COLOURS = np.array(
    [[0.9, 0.9, 0.88], [0.85, 0.75, 0.1], [0.7, 0.1, 0.1], [0.2, 0.35, 0.6], [0.3, 0.5, 0.3]],
    dtype=np.float32,
)


def jitter(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return np.clip(colour * rng.uniform(1 - amount, 1 + amount, 3), 0, 1).astype(np.float32)


def pick(rng: np.random.Generator, palette: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return jitter(rng, palette[rng.integers(len(palette))], amount)
