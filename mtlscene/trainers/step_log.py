"""Training scalars summed on the device and handed to ``self.log`` only every few steps."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


class DeviceLogWindow:
    """Running sums of named scalars over the steps since the last log, kept on the device.

    ``LightningModule.log`` costs host time on every call (its result collection, a move of
    each value, a walk of the batch for its size), about as much as a small network's whole
    step. The training step therefore adds its losses here with one ``stack`` and one
    in-place ``add_`` (device work only, no read-back), and the module logs the window's
    means once per ``log_every_n_steps``: the same steps at which a logger writes anyway.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: Tensor | None = None
        self.steps = 0

    def add(self, values: Mapping[str, Tensor]) -> Tensor:
        """Add one step's scalars (detached); returns them stacked, for other device checks."""
        stacked = torch.stack([value.detach().float() for value in values.values()])
        if self.sums is None or self.names != list(values):
            # A new set of names (the first step, or a task that stopped reporting) restarts
            # the window rather than mixing different tasks under one index.
            self.names, self.sums, self.steps = list(values), torch.zeros_like(stacked), 0
        self.sums.add_(stacked)
        self.steps += 1
        return stacked

    def means(self) -> dict[str, Tensor]:
        """Name -> mean over the window (0-dim device tensors), and start a new window."""
        if self.sums is None or self.steps == 0:
            return {}
        means = self.sums / self.steps
        self.sums = torch.zeros_like(self.sums)
        self.steps = 0
        return dict(zip(self.names, means.unbind(), strict=True))
