"""A training loader that can resume in the middle of an epoch, exactly.

Lightning checkpoints the state of loaders that implement ``state_dict`` /
``load_state_dict``. Ours records how many batches of the current epoch the training loop
has taken; on resume the sampler skips those indices, so the resumed run sees exactly the
batches the uninterrupted run would have seen, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Per-epoch shuffled (seed + epoch) and sharded across DDP ranks, with a skip.

    Yields ``(index, augmentation_seed)`` pairs: the seed is a function of (seed, epoch,
    index) only, so augmentations do not depend on worker processes or on the global RNG,
    and a resumed epoch reproduces them. Being a ``DistributedSampler``, Lightning keeps it
    under DDP instead of wrapping it; outside DDP it acts as a single replica.
    """

    def __init__(self, dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            dataset,
            num_replicas=None if distributed else 1,
            rank=None if distributed else 0,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        if skip >= len(indices):  # the checkpoint was taken at the end of the epoch
            skip = 0
        return iter([(i, self.augmentation_seed(i)) for i in indices[skip:]])

    def augmentation_seed(self, index: int) -> int:
        """A 31-bit seed unique to (seed, epoch, index)."""
        return (self.seed * 1_000_003 + self.epoch * 10_007 + index * 7919) % (2**31 - 1)


class ResumableDataLoader(DataLoader):
    """DataLoader whose position inside an epoch is saved in Lightning checkpoints.

    Lightning fetches one batch ahead of the training step, so the position saved is the
    number of batches handed out minus those still waiting in the prefetch buffer, which
    the loop reports through `mark_consumed`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_consumed = 0
        self._skip_batches = 0

    def __iter__(self):
        sampler = self.sampler
        if self._skip_batches and isinstance(sampler, ResumableSampler):
            sampler.skip = self._skip_batches * (self.batch_size or 1)
            self.batches_consumed = self._skip_batches
        else:
            self.batches_consumed = 0
        self._skip_batches = 0
        return super().__iter__()

    def mark_consumed(self, batches_in_epoch: int) -> None:
        """Record how many batches of this epoch the training loop has finished."""
        self.batches_consumed = batches_in_epoch

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": int(getattr(self.sampler, "epoch", 0)),
            "batches_consumed": self.batches_consumed,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._skip_batches = int(state.get("batches_consumed", 0))
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.set_epoch(int(state.get("epoch", 0)))
