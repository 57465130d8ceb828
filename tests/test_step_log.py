"""Training scalars are summed on the device and logged once per log_every_n_steps."""

import itertools
import warnings

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger
from torch.utils.data import DataLoader

from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.trainers.step_log import DeviceLogWindow


def test_window_means_over_the_steps_since_the_last_read():
    window = DeviceLogWindow()
    window.add({"a": torch.tensor(1.0), "b": torch.tensor(10.0)})
    stacked = window.add({"a": torch.tensor(3.0), "b": torch.tensor(20.0)})
    assert stacked.tolist() == [3.0, 20.0]
    means = window.means()
    assert {k: float(v) for k, v in means.items()} == {"a": 2.0, "b": 15.0}
    assert window.means() == {}  # a new, empty window
    window.add({"a": torch.tensor(5.0), "b": torch.tensor(7.0)})
    window.add({"a": torch.tensor(9.0)})  # another set of names restarts the window
    assert {k: float(v) for k, v in window.means().items()} == {"a": 9.0}


class RecordingLogger(Logger):
    name, version = "recording", 0

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


class StepLosses(pl.Callback):
    def __init__(self):
        self.losses: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        losses = {k: float(v) for k, v in pl_module.latest_losses.items()}
        self.losses.append({**losses, "total": float(outputs["loss"])})


def _batches():
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(1, 3, 16, 32, generator=generator),
            "semantic": torch.randint(0, 19, (1, 16, 32), generator=generator),
            "name": ["frame"],
        }
        for _ in range(3)
    ]


def test_fit_logs_window_means_only_on_logging_steps_and_the_last():
    torch.manual_seed(0)
    module = MultiTaskModule(
        DeepLabEncoder("resnet18", 16, aspp_channels=8),
        {"semantic": {"hidden_channels": 8, "num_layers": 1}},
        clustering=None,
    )
    calls = []
    original_log = module.log
    module.log = lambda *args, **kwargs: (
        calls.append(module.global_step),
        original_log(*args, **kwargs),
    )
    logger, steps = RecordingLogger(), StepLosses()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=12,
        log_every_n_steps=5,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[steps],
    )
    stream = list(itertools.islice(itertools.cycle(_batches()), 12))
    trainer.fit(module, DataLoader(stream, batch_size=None))
    # self.log runs on 3 of the 12 steps only (steps 5 and 10, and the run's last): each
    # logging step logs the total, the task loss and the weighting's 5 scalars.
    assert sorted(set(calls)) == [4, 9, 11]
    # The logger writes on its own steps (5 and 10); callback_metrics (the progress bar,
    # checkpoints) also gets the run's last, partial window.
    rows = [(step, row) for step, row in logger.rows if "train/loss_total" in row]
    assert [step for step, _ in rows] == [4, 9]
    rows.append((11, {k: float(v) for k, v in trainer.callback_metrics.items()}))
    windows = [steps.losses[0:5], steps.losses[5:10], steps.losses[10:12]]
    for (_, row), window in zip(rows, windows, strict=True):
        mean_total = sum(item["total"] for item in window) / len(window)
        mean_semantic = sum(item["semantic"] for item in window) / len(window)
        assert row["train/loss_total"] == pytest.approx(mean_total, rel=1e-5)
        assert row["train/loss/semantic"] == pytest.approx(mean_semantic, rel=1e-5)
        assert "uncertainty/sigma/semantic" in row


def test_flat_batches_move_without_lightnings_walk_and_nested_ones_with_it(monkeypatch):
    module = MultiTaskModule(DeepLabEncoder("resnet18", 16, aspp_channels=8), clustering=None)
    walked = []
    monkeypatch.setattr(
        pl.LightningModule,
        "transfer_batch_to_device",
        lambda self, batch, device, idx: walked.append(batch) or batch,
    )
    flat = {"image": torch.zeros(1, 3, 4, 4), "name": ["a"], "count": 3}
    moved = module.transfer_batch_to_device(flat, torch.device("cpu"), 0)
    assert moved["image"] is flat["image"] and moved["name"] == ["a"] and not walked
    nested = {"image": torch.zeros(1), "extra": [torch.zeros(1)]}
    module.transfer_batch_to_device(nested, torch.device("cpu"), 0)
    assert walked == [nested]


def test_the_models_own_batch_transfer_prints_no_lightning_notice():
    from lightning.pytorch.core.datamodule import LightningDataModule
    from lightning.pytorch.trainer.connectors import data_connector

    from mtlscene.cli.quiet import silence_known_noise

    module = MultiTaskModule(DeepLabEncoder("resnet18", 16, aspp_channels=8), clustering=None)
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A fresh cache: Lightning warns once per message and process.
        patch.setattr(data_connector, "warning_cache", type(data_connector.warning_cache)())
        selector = data_connector._DataHookSelector(module, LightningDataModule())
        assert selector.get_instance("transfer_batch_to_device") is module
        noticed = [w for w in caught if "transfer_batch_to_device" in str(w.message)]
        assert noticed, "Lightning no longer prints the notice: drop the filter in quiet.py"
        caught.clear()
        silence_known_noise()
        patch.setattr(data_connector, "warning_cache", type(data_connector.warning_cache)())
        selector.get_instance("transfer_batch_to_device")
    assert not [w for w in caught if "transfer_batch_to_device" in str(w.message)]
