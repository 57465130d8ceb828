"""The loaders every data module serves: a resumable shuffled one for training, plain ones
for evaluation (one place, so the three data modules cannot drift apart)."""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader, Dataset

from mtlscene.data.sampling import ResumableDataLoader, ResumableSampler


def ignore_stop_signals(worker_id: int) -> None:
    """A worker's ``worker_init_fn``: SIGTERM and SIGUSR2 are for the main process.

    SLURM signals every process of a job step. The main process answers (a checkpoint at
    the next step, then a requeue), and its loaders shut their workers down; a worker
    killed by the signal instead (torch's worker SIGTERM handler re-raises it) would fail
    the main process's next batch before it could save anything.
    """
    for signum in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


def training_loader(
    dataset: Dataset, batch_size: int, num_workers: int, seed: int, pin_memory: bool
) -> ResumableDataLoader:
    """Shuffled per epoch from ``seed`` and resumable mid-epoch (exact resume)."""
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ResumableSampler(dataset, shuffle=True, seed=seed, drop_last=False),
        num_workers=num_workers,
        # A last short batch would be a noisy step; kept when it is the only batch.
        drop_last=len(dataset) > batch_size,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals,
    )


def evaluation_loader(
    dataset: Dataset, batch_size: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    """Every item once, in order.

    Its iterator draws the workers' base seed from a generator of its own, never from the
    global torch RNG that training draws dropout from: with persistent workers that draw
    happens once, in the sanity check (whose RNG Lightning restores) of a fresh fit, but in
    the first validation of a resumed one (no sanity check), which then trained on with
    other random numbers than the uninterrupted run.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals,
        # Evaluation draws nothing at random: any fixed seed does.
        generator=torch.Generator().manual_seed(0),
    )
