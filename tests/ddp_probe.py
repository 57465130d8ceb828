"""A callback used by the DDP tests (imported by class path in subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch import Callback


class DistributedProbe(Callback):
    """Writes, per rank, each task's s and weight after each step, and the validation metrics."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.steps: list[dict[str, float]] = []
        self.weights: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        weighting = pl_module.weighting
        self.steps.append({name: float(s) for name, s in weighting.log_variances().items()})
        self.weights.append({name: float(w) for name, w in weighting.weights().items()})
        self._dump(trainer, "sigmas", self.steps)
        self._dump(trainer, "weights", self.weights)

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/") and torch.isfinite(v)
        }
        metrics["world_size"] = trainer.world_size
        self._dump(trainer, "metrics", metrics)

    def _dump(self, trainer, kind: str, payload) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{kind}_world{trainer.world_size}_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(payload))
