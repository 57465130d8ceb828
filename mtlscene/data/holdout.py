"""A selection split carved from train (``val_from_train``), shared by the data modules.

Whatever picks something by a score (a weight search, early stopping, a grouping chosen by
its trained results) must score on images that the reported numbers never see. On real
CityScapes ``test`` evaluates ``val`` (its test labels are withheld) and NYUv2's files have
one labelled split besides train, so the selection split is taken from train: a seeded
choice of training frames, served unaugmented as the validation split, while training
uses the rest.

The choice is a function of the split's file list (in the data module's fixed order), the
amount and the seed only: the same in every process and for any number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset


def check_amount(amount: float, option: str = "data.val_from_train") -> float:
    """``amount`` as a float once it is a fraction in (0, 1), a whole count or 0.

    Raises:
        ValueError: a negative, non-number or non-whole amount above 1, naming ``option``.
    """
    try:
        value = float(amount)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value) or value < 0 or (value > 1 and not value.is_integer()):
        raise ValueError(
            f"{option} is {amount!r}: give a fraction in (0, 1) of the training images, a "
            "whole number of them, or 0 to validate on the validation split"
        )
    return value


def held_out_count(amount: float, total: int, option: str = "data.val_from_train") -> int:
    """How many of ``total`` training frames ``amount`` holds out.

    Args:
        amount: a fraction in (0, 1) of the training frames (rounded, at least one), or a
            whole count >= 1; 0 holds out nothing.
        total: frames in the training split.
        option: the option's name, for the message.

    Raises:
        ValueError: a bad amount (see `check_amount`), or one that would leave no
            training frame.
    """
    value = check_amount(amount, option)
    if value == 0:
        return 0
    count = max(1, round(value * total)) if value < 1 else int(value)
    if count >= total:
        raise ValueError(
            f"{option} is {value:g}, which holds out {count} of the {total} training "
            "images and leaves none to train on; hold out fewer"
        )
    return count


def carve(total: int, amount: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) positions of a training split of ``total`` frames.

    A permutation of ``0..total-1`` drawn from ``seed``; its first ``held_out_count``
    positions are held out. Both lists are sorted, disjoint, and together every position.
    """
    count = held_out_count(amount, total)
    order = np.random.default_rng(seed).permutation(total)
    held_out = sorted(int(i) for i in order[:count])
    training = sorted(int(i) for i in order[count:])
    return training, held_out


class HeldOutSubset(Dataset):
    """Some frames of a dataset, by position; everything else is the dataset's.

    Keys are positions in the subset: a plain index, or ``(index, seed)`` from
    `ResumableSampler` (the seed is kept, so the
    augmentation depends on the position in the subset like on a whole split).
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            return self.dataset[(self.indices[key[0]], key[1])]
        return self.dataset[self.indices[key]]

    @property
    def samples(self) -> list:
        """The subset's entries of the dataset's ``samples`` (its files)."""
        samples = self.dataset.samples
        return [samples[i] for i in self.indices]

    def __getattr__(self, name: str) -> Any:
        # root, split, size... are the dataset's (called only for missing attributes).
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
