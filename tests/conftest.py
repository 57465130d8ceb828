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
