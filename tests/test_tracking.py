"""Uncertainty tracking and Weights & Biases (offline, in a temp dir)."""

import csv
from pathlib import Path

import pytest
from PIL import Image
from wandb.proto import wandb_internal_pb2
from wandb_records import (
    config_keys,
    finish_and_flush,
    history_keys,
    read_records,
    write_records,
)

from mtlscene.callbacks import UncertaintyTracker
from mtlscene.cli.main import build_cli
from mtlscene.loggers import OfflineFirstWandbLogger, wandb_api_key_available

CONF = Path(__file__).parent / "conf"
TINY = str(CONF / "tiny.yaml")
WANDB = str(Path(__file__).parents[1] / "configs" / "logger" / "wandb.yaml")


def _history(run_dir: Path) -> list[dict]:
    with (run_dir / "uncertainty_history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_history_records_every_task_each_step_and_epoch_end():
    cli = build_cli(["fit", "--config", TINY, "--trainer.max_epochs", "2"])
    rows = _history(Path(cli.trainer.log_dir))
    assert {row["task"] for row in rows} == {"semantic", "instance", "depth"}
    assert sum(row["event"] == "epoch_end" for row in rows) == 2 * 3
    steps = sorted({int(row["step"]) for row in rows if row["event"] == "step"})
    assert steps == [1, 2, 3, 4]
    first, last = rows[0], rows[-1]
    assert float(first["sigma"]) ** 2 == pytest.approx(2.718281828 ** float(first["s"]), rel=1e-4)
    assert first["s"] != last["s"]  # sigmas are learned
    assert Image.open(Path(cli.trainer.log_dir) / "uncertainty.png").size == (1100, 400)


def test_fixed_weights_give_flat_lines():
    cli = build_cli(["fit", "--config", TINY, "--config", str(CONF / "fixed_weights.yaml")])
    rows = _history(Path(cli.trainer.log_dir))
    assert {row["task"] for row in rows} == {"semantic", "depth"}
    assert {row["weight"] for row in rows if row["task"] == "depth"} == {"0.1"}


def test_tracker_state_survives_checkpointing():
    tracker = UncertaintyTracker()
    tracker.history.append({"step": 1, "task": "depth"})
    restored = UncertaintyTracker()
    restored.load_state_dict(tracker.state_dict())
    assert restored.history == tracker.history
    with pytest.raises(ValueError, match="every_n_steps"):
        UncertaintyTracker(every_n_steps=0)


def test_wandb_runs_offline_without_key_and_records_the_run(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert not wandb_api_key_available()
    cli = build_cli(
        [
            "fit",
            "--config",
            TINY,
            "--config",
            WANDB,
            "--trainer.logger.init_args.save_dir",
            "wandb_runs",
        ]
    )
    logger = cli.trainer.logger
    assert isinstance(logger, OfflineFirstWandbLogger)
    run_files = list(Path("wandb_runs/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    finish_and_flush(logger.experiment)
    records = read_records(run_files[0])
    keys = history_keys(records)
    for task in ("semantic", "instance", "depth"):
        assert f"uncertainty/sigma/{task}" in keys
        assert f"uncertainty/weight/{task}" in keys
        assert f"train/loss/{task}" in keys
    assert "val/semantic/miou" in keys
    assert "val/examples/all_masks" in keys  # images with predicted and true masks
    assert "val/predicted_disparity/count" in keys
    assert "uncertainty/evolution/filenames" in keys  # the sigma/weight figure
    assert "uncertainty/history/nrows" in keys  # the whole history as a table
    assert {"model", "data", "trainer", "seed_everything"} <= config_keys(records)
    run_dir = Path("wandb_runs") / "mtlscene" / str(logger.version)
    assert (run_dir / "uncertainty_history.csv").is_file()


def test_reading_a_run_file_cut_short_fails_instead_of_missing_keys(tmp_path):
    """A run file read before wandb-core closed it lacks its last block and its exit record."""
    history = wandb_internal_pb2.Record()
    item = history.history.item.add()
    item.key, item.value_json = "val/semantic/miou", "0.5"
    exit_record = wandb_internal_pb2.Record()
    exit_record.exit.exit_code = 0
    complete = write_records(tmp_path / "run-complete.wandb", [history, exit_record])
    assert "val/semantic/miou" in history_keys(read_records(complete))
    cut = write_records(tmp_path / "run-cut.wandb", [history])
    with pytest.raises(ValueError, match="incomplete"):
        read_records(cut)
