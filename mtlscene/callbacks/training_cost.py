"""The cost of a training run: network size and FLOPs at fit start, then the step time."""

from __future__ import annotations

import statistics
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from mtlscene.models.cost import NetworkCost, network_cost


def data_image_size(trainer: Trainer) -> tuple[int, int] | None:
    """(height, width) of the data module's images (``data.size``), or None when unknown."""
    size = getattr(getattr(trainer, "datamodule", None), "size", None)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        return None
    return height, width


class TrainingCost(Callback):
    """Prints the network's parameters (shared, per head, total) and forward FLOPs per image
    when a fit starts, and times the training batches.

    The FLOPs are counted once, on one image of the data's size (``data.size``), and skipped
    when the data module does not say its size. A batch's time is the wall-clock interval
    between the ends of consecutive training batches of an epoch (data loading included,
    validation excluded); nothing waits for the device, so on a GPU the intervals measure
    throughput once its queue is full, and the median is the figure to read.
    ``MultiTaskModule`` adds this callback itself (``configure_callbacks``).
    """

    def __init__(self) -> None:
        self.network_cost: NetworkCost | None = None
        self.step_times: list[float] = []
        self._last_end: float | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        network = getattr(pl_module, "network", None)
        if network is None or not trainer.is_global_zero:
            return
        self.network_cost = network_cost(network, data_image_size(trainer))
        branch_point = pl_module.hparams.get("branch_point", "aspp")
        rank_zero_info(f"Network (branch point {branch_point}): {self.network_cost.describe()}")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_end = None  # the interval across validation and epoch ends is no step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self.step_times.append(now - self._last_end)
        self._last_end = now

    def summary(self) -> dict[str, Any]:
        """Plain data for a result file: the network's cost and the median batch time (s)."""
        cost = self.network_cost.as_dict() if self.network_cost is not None else {}
        median = statistics.median(self.step_times) if self.step_times else None
        return {**cost, "median_step_s": median, "timed_steps": len(self.step_times)}


__all__ = ["TrainingCost", "data_image_size"]
