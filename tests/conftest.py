"""Shared test set-up: no network, small thread counts, temp dirs for W&B."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test writes W&B and Lightning files into its own temp dir."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    yield
    # W&B keeps process-wide state (the open run, its settings such as mode "disabled"):
    # a test that used it must not decide how the next test's W&B logger behaves.
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        if getattr(wandb, "run", None) is not None:
            wandb.finish()
        wandb.teardown()


@pytest.fixture(scope="session")
def ddp_tiny_fit(tmp_path_factory):
    """One 2-process DDP fit (gloo on CPU) of tests/conf/tiny.yaml, from the prepared cache,
    with the tests' DistributedProbe; shared by the tests that read what it leaves (each
    rank's s per step, the checkpoint, the cache folder and the printed log), so that the
    suite starts this two-process job once.

    Returns a namespace: ``stdout`` (both ranks), ``probe`` (the probe's folder), ``root``
    (the synthetic data), ``cache`` (the cache folder's entries right after the fit) and
    ``checkpoint`` (``last.ckpt``).
    """
    import subprocess
    from pathlib import Path
    from types import SimpleNamespace

    tests = Path(__file__).parent
    base = tmp_path_factory.mktemp("ddp_tiny_fit")
    root = base / "syn"
    args = ["fit", "--config", str(tests / "conf" / "tiny.yaml"), "--data.root", str(root)]
    args += ["--data.cache", "true", "--data.synthetic_images", "{train: 8, val: 4, test: 2}"]
    args += ["--trainer.limit_train_batches", "null", "--trainer.accelerator", "cpu"]
    args += ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    args += ["--trainer.callbacks+=ddp_probe.DistributedProbe"]
    args += [f"--trainer.callbacks.out_dir={base / 'probe'}"]
    path = os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene", *args],
        capture_output=True,
        text=True,
        cwd=base,
        env=dict(os.environ, PYTHONPATH=path, WANDB_DIR=str(base / "wandb")),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return SimpleNamespace(
        stdout=result.stdout,
        probe=base / "probe",
        root=root,
        cache=sorted(p.name for p in (root / "mtlscene_cache").iterdir()),
        checkpoint=next((base / "runs" / "tiny").rglob("last.ckpt")),
    )
