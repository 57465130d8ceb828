"""The training step queues work on the device and never reads a value back to the host."""

from pathlib import Path

import pytest
import torch

from mtlscene.cli.main import build_cli

ROOT = Path(__file__).parents[1]
TINY = str(ROOT / "tests" / "conf" / "tiny.yaml")
PRESETS = ROOT / "configs" / "weighting"
# Every Tensor method that copies a value to the host (and so waits for the device).
READ_BACKS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")


class ReadBackCounter:
    """Counts read-backs made while the model's training_step runs (and only then)."""

    def __init__(self, monkeypatch):
        self.inside = False
        self.calls: list[str] = []
        for name in READ_BACKS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(name, original))

    def _counting(self, name, original):
        def counted(tensor, *args, **kwargs):
            if self.inside:
                self.calls.append(name)
            return original(tensor, *args, **kwargs)

        return counted

    def wrap(self, step):
        def training_step(*args, **kwargs):
            self.inside = True
            try:
                return step(*args, **kwargs)
            finally:
                self.inside = False

        return training_step


LOSS_BASED = ["uncertainty", "approx_optimal", "equal", "dwa", "rlw", "famo", "gls", "imtl_l"]


@pytest.mark.parametrize("preset", [*LOSS_BASED, "gradnorm"])
def test_training_step_makes_no_host_read_back(monkeypatch, preset):
    cli = build_cli(
        ["--config", TINY, "--config", str(PRESETS / f"{preset}.yaml"),
         "--trainer.limit_val_batches", "0", "--trainer.callbacks", "[]"],
        run=False,
    )  # fmt: skip
    counter = ReadBackCounter(monkeypatch)
    steps = []
    step = cli.model.training_step

    def recorded(*args, **kwargs):
        steps.append(1)
        return step(*args, **kwargs)

    monkeypatch.setattr(cli.model, "training_step", counter.wrap(recorded))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(steps) == 2  # the patched step really ran
    assert counter.calls == []


def test_the_counter_sees_a_read_back(monkeypatch):
    # The check above would pass vacuously if the patch missed: the old finite check reads
    # one bool back per step.
    counter = ReadBackCounter(monkeypatch)
    check = counter.wrap(lambda value: bool(torch.isfinite(value).all()) and float(value))
    check(torch.tensor(1.0))
    assert counter.calls == ["__bool__", "__float__"]
