"""Multi-process (DDP on CPU, gloo) and mixed-precision behaviour."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlscene.cli.main import build_cli

TESTS = Path(__file__).parent
TINY = str(TESTS / "conf" / "tiny.yaml")
DATA = ["--data.synthetic_images", "{train: 8, val: 4, test: 2}"]
DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def _probe(out_dir: Path) -> list[str]:
    """Arguments adding the tests' DistributedProbe, writing into ``out_dir``."""
    return [
        "--trainer.callbacks+=ddp_probe.DistributedProbe",
        f"--trainer.callbacks.out_dir={out_dir}",
    ]


def _run(args: list[str], out_dir: Path) -> None:
    probe = _probe(out_dir)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene", *args, *probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _load(path: Path):
    return json.loads(path.read_text())


def test_ddp_trains_with_identical_sigmas_and_same_validation_metrics(ddp_tiny_fit, tmp_path):
    # Two processes train (the shared fit, conftest.py); after every step both ranks hold
    # the same s for every task.
    rank0 = _load(ddp_tiny_fit.probe / "sigmas_world2_rank0.json")
    rank1 = _load(ddp_tiny_fit.probe / "sigmas_world2_rank1.json")
    assert len(rank0) == 2  # 8 images / (2 ranks x batch 2) = 2 steps
    assert rank0 == rank1
    assert rank0[0] != rank0[1]  # and they do move

    checkpoint = ddp_tiny_fit.checkpoint
    validate = ["validate", "--config", TINY, *DATA, "--data.root", str(ddp_tiny_fit.root)]
    validate += ["--ckpt_path", str(checkpoint)]
    # One process in this one (the reference needs no second interpreter), two in a child.
    build_cli([*validate, "--trainer.devices", "1", *_probe(tmp_path / "one")])
    _run([*validate, *DDP], tmp_path / "two")
    single = _load(tmp_path / "one" / "metrics_world1_rank0.json")
    double = _load(tmp_path / "two" / "metrics_world2_rank0.json")
    assert double["world_size"] == 2
    keys = [k for k in single if "/loss/" not in k and k != "world_size"]
    assert {"val/semantic/miou", "val/depth/mae", "val/instance/mae"} <= set(keys)
    assert {"val/panoptic/pq", "val/panoptic/rq_stuff"} <= set(keys)  # PQ states sum
    for key in keys:
        assert double[key] == pytest.approx(single[key], abs=1e-5), key


def test_bf16_mixed_precision_stays_finite_and_close_to_float32():
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        cli = build_cli(
            ["--config", TINY, "--trainer.precision", precision, "--trainer.max_epochs", "2"],
            run=False,
        )
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        metrics = cli.trainer.callback_metrics
        results[precision] = (
            {k: float(metrics[f"train/loss/{k}"]) for k in ("semantic", "instance", "depth")},
            {task: float(sigma) for task, sigma in cli.model.weighting.sigmas().items()},
        )
        assert all(p.dtype == torch.float32 for p in cli.model.weighting.parameters())
    (loss32, sigma32), (loss16, sigma16) = results["32-true"], results["bf16-mixed"]
    for task in loss32:
        assert torch.isfinite(torch.tensor(loss16[task]))
        assert loss16[task] == pytest.approx(loss32[task], rel=0.1)
        assert sigma16[task] == pytest.approx(sigma32[task], rel=0.02)
