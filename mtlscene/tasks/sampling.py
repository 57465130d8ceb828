"""Dedicated, seeded random streams for Monte-Carlo sampling outside training.

Validation's sampled semantic loss and the MC-dropout passes of ``predict`` draw their noise
from a `torch.Generator` of their own, seeded with `MC_SEED` for every call:
the results are a function of the inputs alone (repeatable, the same on every rank and
resume), and the global random stream, which training, data order and
`ExactResume` rely on, never moves.
"""

from __future__ import annotations

import torch

MC_SEED = 0
"""The seed of every Monte-Carlo stream made by `mc_generator` unless told otherwise."""


def mc_generator(device: torch.device | str, seed: int = MC_SEED) -> torch.Generator:
    """A fresh generator on ``device`` (its noise is drawn there), seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


__all__ = ["MC_SEED", "mc_generator"]
