"""Colour palettes, colour jitter and value noise shared by the painters and the renderer."""

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


class Noise:
    """Smooth periodic value noise in [-1, 1] from one random lattice per image."""

    def __init__(self, rng: np.random.Generator, size: int = 64) -> None:
        self.table = rng.uniform(-1, 1, (size, size)).astype(np.float32)
        self.size = size

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xf, yf = np.floor(x), np.floor(y)
        tx, ty = (x - xf).astype(np.float32), (y - yf).astype(np.float32)
        tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
        ix, iy = xf.astype(np.int64) % self.size, yf.astype(np.int64) % self.size
        ix1, iy1 = (ix + 1) % self.size, (iy + 1) % self.size
        t = self.table
        top = t[iy, ix] + (t[iy, ix1] - t[iy, ix]) * tx
        bottom = t[iy1, ix] + (t[iy1, ix1] - t[iy1, ix]) * tx
        return top + (bottom - top) * ty

    def fbm(self, x: np.ndarray, y: np.ndarray, octaves: int = 3) -> np.ndarray:
        total, amp, norm = 0.0, 1.0, 0.0
        for octave in range(octaves):
            scale = 2.0**octave
            total = total + amp * self(x * scale + 13.7 * octave, y * scale + 7.3 * octave)
            norm += amp
            amp *= 0.5
        return total / norm

    def cell(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """A random value in [-1, 1] per integer cell (window panes, pavers)."""
        return self.table[np.asarray(i, np.int64) % self.size, np.asarray(j, np.int64) % self.size]
