"""Exact mid-epoch resume: RNG state in checkpoints and the training loader's position."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ExactResume(Callback):
    """Makes a fit resumed from a mid-epoch checkpoint continue exactly where it stopped.

    - Saves the torch (and CUDA) RNG states in the checkpoint and restores them just before
      the first resumed training batch, so dropout and other random layers draw the same
      numbers as in the uninterrupted run.
    - Tells a resumable training loader (one with ``mark_consumed``, such as
      `mtlscene.data.sampling.ResumableDataLoader`) how many batches of the epoch the
      loop has taken, which the loader stores in the checkpoint to skip them on resume.

    ``MultiTaskModule`` adds this callback itself (``configure_callbacks``); it does nothing
    for loaders without ``mark_consumed``.
    """

    def __init__(self) -> None:
        self._pending_rng_states: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Checkpoints are written only after this batch finishes, so count it as consumed.
        loader = trainer.train_dataloader
        if hasattr(loader, "mark_consumed"):
            loader.mark_consumed(batch_idx + 1)
        states, self._pending_rng_states = self._pending_rng_states, None
        if states is not None:
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])


__all__ = ["ExactResume"]
