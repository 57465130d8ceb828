"""End-to-end tests of the LightningCLI on tiny generated CityScapes-format data."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from mtlscene.cli.main import build_cli, main
from mtlscene.errors import ConfigError

CONF = Path(__file__).parent / "conf"
TINY = str(CONF / "tiny.yaml")


def test_help_works_from_module_and_function(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "fit" in capsys.readouterr().out
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene", "fit", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--model.weighting" in result.stdout


def test_configs_compose_in_order(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                TINY,
                "--config",
                str(CONF / "fixed_weights.yaml"),
                "--print_config",
            ]
        )
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["weighting"]["class_path"].endswith("FixedWeighting")
    # From the first file, untouched by the second.
    assert config["data"]["init_args"]["size"] == [32, 64]


def _print_config(capsys, *configs: Path) -> str:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    return capsys.readouterr().out


@pytest.mark.slow
def test_shipped_configs_parse(capsys):
    root = Path(__file__).parents[1] / "configs"
    # Experiments and executors are read by mtlscene-experiment, not by LightningCLI.
    presets = sorted(
        p for p in root.glob("*/*.yaml") if p.parent.name not in ("experiments", "executors")
    )
    assert len(presets) >= 10
    for extra in presets:
        assert "class_path" in _print_config(capsys, root / "cityscapes_tiny.yaml", extra)
    full = _print_config(capsys, root / "cityscapes_tiny.yaml", root / "cityscapes.yaml")
    assert "- 1024" in full


def test_fit_checkpoint_validate_round_trip():
    fit = build_cli(["fit", "--config", TINY])
    checkpoint = fit.trainer.checkpoint_callback
    assert Path(checkpoint.best_model_path).is_file()
    best = float(checkpoint.best_model_score)
    validate = build_cli(["validate", "--config", TINY, "--ckpt_path", checkpoint.best_model_path])
    metrics = validate.trainer.callback_metrics
    assert float(metrics["val/semantic/miou"]) == pytest.approx(best, abs=1e-6)
    for key in ("val/depth/mae", "val/depth/rmse", "val/instance/mae", "val/instance/ap"):
        assert torch.isfinite(metrics[key])
    # The uncertainty history and its picture are in the run directory.
    run_dir = Path(fit.trainer.log_dir)
    assert (run_dir / "uncertainty_history.csv").is_file()
    assert Image.open(run_dir / "uncertainty.png").size[0] > 200


def test_zero_weight_switches_a_task_off():
    cli = build_cli(["--config", TINY, "--config", str(CONF / "fixed_weights.yaml")], run=False)
    assert set(cli.model.heads) == {"semantic", "depth"}
    assert "instance_ap" not in cli.model.stage_metrics["val"]


def test_unknown_task_in_config_names_it():
    # A config error (one line from `mtlscene`), with the closest registered name.
    with pytest.raises(ConfigError, match="unknown task 'normals' in model.tasks \\(did you mean"):
        build_cli(["--config", TINY, "--model.tasks", "{semantic: {}, normals: {}}"], run=False)


def test_checkpoints_load_weights_only_and_test_prints_the_papers_columns(capsys, monkeypatch):
    fit = build_cli(["fit", "--config", TINY])
    loads = []
    original = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    build_cli(
        ["test", "--config", TINY, "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path]
    )
    assert loads and all(flag is True for flag in loads)
    out = capsys.readouterr().out
    for column in ("IoU [%]", "Instance mean error [px]", "Inverse depth mean error [px]"):
        assert column in out
