"""Under DDP (2 CPU processes, gloo) every rank holds the same weights at every step."""

import json
from pathlib import Path

import pytest
from test_distributed import DATA, DDP, TINY, _run

PRESETS = Path(__file__).parents[1] / "configs" / "weighting"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "epochs"),
    [
        ("dwa", 3),  # loss-based: epoch losses summed over ranks; dynamic from epoch 3
        ("famo", 1),  # loss-based: logits stepped from rank-averaged losses every step
        ("mgda", 1),  # gradient-based: weights from the rank-averaged Jacobian
    ],
)
def test_weights_identical_on_every_rank(tmp_path, preset, epochs):
    args = ["fit", "--config", TINY, "--config", str(PRESETS / f"{preset}.yaml"), *DATA, *DDP]
    args += ["--trainer.limit_train_batches", "null", "--trainer.limit_val_batches", "0"]
    args += ["--trainer.max_epochs", str(epochs), "--trainer.callbacks", "[]"]
    _run(args, tmp_path)
    rank0 = json.loads((tmp_path / "weights_world2_rank0.json").read_text())
    rank1 = json.loads((tmp_path / "weights_world2_rank1.json").read_text())
    assert len(rank0) == 2 * epochs  # 8 images / (2 ranks x batch 2) = 2 steps per epoch
    assert rank0 == rank1
    assert rank0[-1] != rank0[0]  # the weights do move
