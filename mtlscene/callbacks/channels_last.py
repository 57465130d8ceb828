"""Channels-last memory format for the network and its input images (faster convs on GPUs)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ChannelsLast(Callback):
    """Stores the model's 4-D weights and every batch's ``image`` as NHWC (channels last).

    Tensor cores run convolutions in NHWC; with NCHW tensors cuDNN transposes around every
    convolution. Results are the same up to floating-point rounding. The batch is changed in
    place (its ``image`` entry), so the model needs no option for it.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    @staticmethod
    def _convert(batch: Any) -> None:
        image = batch.get("image") if isinstance(batch, dict) else None
        if isinstance(image, torch.Tensor) and image.dim() == 4:
            batch["image"] = image.contiguous(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._convert(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._convert(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._convert(batch)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._convert(batch)
