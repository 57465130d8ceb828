"""Randomness shared by the procedural scene generators: one stream per scene, value noise."""

from __future__ import annotations

import zlib

import numpy as np


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one scene, from ``(seed, split, index)`` alone."""
    # crc32 is stable across runs (str hash is salted), so each image has its own stream.
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]))


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
        """Fractal noise: ``octaves`` layers, each at twice the frequency and half the weight."""
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
