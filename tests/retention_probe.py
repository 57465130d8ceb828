"""A callback for the streaming-predict test (imported by class path by the CLI)."""

from __future__ import annotations

import gc
import weakref

from lightning.pytorch import Callback


class RetentionProbe(Callback):
    """At each predict batch end, counts the earlier batches' tensors still alive."""

    def __init__(self) -> None:
        self.earlier: list[weakref.ref] = []
        self.alive_counts: list[int] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args) -> None:
        gc.collect()
        self.alive_counts.append(sum(ref() is not None for ref in self.earlier))
        self.earlier += [weakref.ref(batch["image"])]
        self.earlier += [
            weakref.ref(t) for t in outputs["prediction"].values() if hasattr(t, "shape")
        ]
