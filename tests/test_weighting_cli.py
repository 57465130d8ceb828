"""Every weighting method trains through the CLI from its preset, logging its weights."""

import csv
import math
from pathlib import Path

import pytest
import torch

from mtlscene.cli.main import build_cli
from mtlscene.weighting import WEIGHTING_METHODS

ROOT = Path(__file__).parents[1]
TINY = str(ROOT / "tests" / "conf" / "tiny.yaml")
PRESETS = ROOT / "configs" / "weighting"
# Preset file per short name; the fixed baseline's is the paper's grid-searched weights.
PRESET_NAMES = {name: name for name in WEIGHTING_METHODS} | {"fixed": "approx_optimal"}
NEEDS_CVXPY = {"cagrad", "nash_mtl"}
FAST = ["--trainer.limit_val_batches", "0", "--trainer.callbacks", "[]"]
TRACKER = [
    "--trainer.callbacks+=mtlscene.callbacks.UncertaintyTracker",
    "--trainer.callbacks.every_n_steps=1",
]


def _has_cvxpy() -> bool:
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("method", sorted(WEIGHTING_METHODS))
def test_preset_fits_and_logs_weights(method):
    preset = PRESETS / f"{PRESET_NAMES[method]}.yaml"
    args = ["fit", "--config", TINY, "--config", str(preset), *FAST, *TRACKER]
    if method in NEEDS_CVXPY and not _has_cvxpy():
        with pytest.raises(ValueError, match="pip install"):
            build_cli(args)
        return
    cli = build_cli(args)
    assert type(cli.model.weighting) is WEIGHTING_METHODS[method]
    metrics = cli.trainer.callback_metrics
    tasks = list(cli.model.heads)
    for task in tasks:
        assert torch.isfinite(metrics[f"weight/{task}"])
        assert torch.isfinite(metrics[f"uncertainty/weight/{task}"])
    assert torch.isfinite(metrics["train/loss_total"])
    # The tracker records a finite weight for every task at every step.
    with (Path(cli.trainer.log_dir) / "uncertainty_history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["task"] for row in rows} == set(tasks)
    assert all(math.isfinite(float(row["weight"])) for row in rows)


def test_presets_change_only_the_weighting():
    import yaml

    for preset in PRESETS.glob("*.yaml"):
        config = yaml.safe_load(preset.read_text())
        if preset.stem in {"depth_only", "instance_only"}:
            continue  # the paper's single-task baselines also pick the checkpoint metric
        assert list(config) == ["model"] and list(config["model"]) == ["weighting"], preset.name


def test_jacobian_method_refuses_gradient_accumulation_by_name():
    with pytest.raises(ValueError, match="trainer.accumulate_grad_batches"):
        build_cli(
            ["fit", "--config", TINY, "--config", str(PRESETS / "pcgrad.yaml"), *FAST,
             "--trainer.accumulate_grad_batches", "2"]
        )  # fmt: skip


def test_gradient_method_with_bf16_and_clipping_stays_finite():
    cli = build_cli(
        ["fit", "--config", TINY, "--config", str(PRESETS / "upgrad.yaml"), *FAST,
         "--trainer.precision", "bf16-mixed", "--trainer.gradient_clip_val", "0.5"]
    )  # fmt: skip
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss_total"])
    assert all(p.dtype == torch.float32 for p in cli.model.parameters())
