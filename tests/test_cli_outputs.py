"""The CLI says what it is and where every command's outputs went."""

import re
import warnings
from pathlib import Path

import pytest
import torch

from mtlscene.cli.main import DESCRIPTION, SUBCOMMANDS, build_cli, main

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_help_is_the_projects_own(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: mtlscene ")
    assert "Lightning Trainer command line tool" not in out
    assert _flat(DESCRIPTION) in _flat(out)
    for description in SUBCOMMANDS.values():
        assert _flat(description) in _flat(out)  # whole sentences, not cut


def _summary(out: str, subcommand: str) -> dict[str, str]:
    block = out.split(f"Outputs of {subcommand}:\n", 1)[1].split("\n\n", 1)[0]
    return dict(re.match(r"\s+(.+?)\s{2,}(.+)", line).groups() for line in block.splitlines())


def test_each_command_names_its_outputs_and_evaluations_stay_in_the_run(capsys):
    fit = build_cli(["fit", "--config", TINY, "--trainer.max_epochs", "2"])
    run_dir = Path(fit.trainer.logger.log_dir)
    fitted = _summary(capsys.readouterr().out, "fit")
    assert fitted["logs"] == str(run_dir)
    assert Path(fitted["checkpoints"]) == run_dir / "checkpoints"
    assert fitted["last"] == "last.ckpt"
    assert Path(fitted["sigma history"]).is_file()
    checkpoint = run_dir / "checkpoints" / "last.ckpt"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_cli(["validate", "--config", TINY, "--ckpt_path", str(checkpoint)])
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    validated = _summary(capsys.readouterr().out, "validate")
    assert Path(validated["logs"]) == run_dir / "validate_last"
    assert (run_dir / "validate_last" / "metrics.csv").is_file()
    assert validated["checkpoint used"] == str(checkpoint)
    # No new logs/version_N that would look like another training run.
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]
    assert (run_dir / "metrics.csv").is_file()  # the training log is untouched

    build_cli(
        [
            "predict",
            "--config",
            TINY,
            "--ckpt_path",
            str(checkpoint),
            "--trainer.callbacks+=mtlscene.callbacks.PredictionWriter",
            "--trainer.callbacks.output_dir=predictions",
        ]
    )
    predicted = _summary(capsys.readouterr().out, "predict")
    assert predicted["pictures"] == str(Path("predictions/pictures"))
    assert list(Path(predicted["pictures"]).glob("*_panel.png"))
    assert Path(predicted["result files"]).is_dir()


def test_final_table_numbers_the_epoch_like_the_checkpoint(capsys):
    fit = build_cli(["fit", "--config", TINY, "--trainer.max_epochs", "2"])
    last = torch.load(fit.trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert last["epoch"] == 1  # the second epoch, saved as epoch=1 in checkpoint names
    table = capsys.readouterr().out.split("Final validation metrics ", 1)[1].splitlines()[0]
    assert table == f"(epoch={last['epoch']}, step={last['global_step']})"


def test_last_checkpoint_is_the_latest_state_when_the_metric_does_not_improve(tmp_path):
    from lightning import Trainer
    from lightning.pytorch.demos.boring_classes import BoringModel

    from mtlscene.callbacks import TaskCheckpoint

    class Flat(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/flat", 0.0)  # never improves after the first validation
            return super().validation_step(batch, batch_idx)

    checkpoint = TaskCheckpoint(monitor="val/flat", mode="max", save_last=True)
    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=3, limit_train_batches=2, limit_val_batches=1,
        callbacks=[checkpoint], logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Flat())
    last = torch.load(checkpoint.last_model_path, weights_only=True)
    best = torch.load(checkpoint.best_model_path, weights_only=True)
    assert (best["epoch"], best["global_step"]) == (0, 2)
    assert (last["epoch"], last["global_step"]) == (2, 6)
