"""Exact resume: a fit killed mid-epoch and resumed ends where an uninterrupted one does."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mtlscene.cli.main import build_cli

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
ARGS = [
    "--config",
    TINY,
    "--trainer.max_epochs",
    "2",
    "--trainer.limit_train_batches",
    "null",
    "--trainer.deterministic",
    "true",
    "--data.synthetic_images",
    "{train: 8, val: 2, test: 2}",
    "--data.scale_range",
    "[0.8, 1.2]",
    "--model.lr_scheduler",
    '{"class_path": "torch.optim.lr_scheduler.StepLR", '
    '"init_args": {"step_size": 1, "gamma": 0.5}}',
]


class BatchLog(pl.Callback):
    """Remembers which images each training step saw, and its augmented pixels."""

    def __init__(self):
        self.seen: list[tuple[int, tuple[str, ...], float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.global_step, tuple(batch["name"]), float(batch["image"].sum())))


class CrashAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def _fit(extra_callbacks, ckpt_path=None):
    cli = build_cli(ARGS, run=False)
    cli.trainer.callbacks.extend(extra_callbacks)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    return cli


def test_killed_mid_epoch_run_resumes_exactly(tmp_path):
    reference_log = BatchLog()
    reference = _fit([reference_log])
    assert reference.trainer.global_step == 8  # 2 epochs of 4 batches

    every_step = ModelCheckpoint(
        dirpath=tmp_path / "resume", every_n_train_steps=1, save_last=True, save_top_k=0
    )
    first_log = BatchLog()
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit([every_step, first_log, CrashAt(step=5)])  # dies inside epoch 1
    last = tmp_path / "resume" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 5 and checkpoint["epoch"] == 1

    resumed_log = BatchLog()
    resumed = _fit([resumed_log], ckpt_path=str(last))
    assert resumed.trainer.global_step == 8
    assert resumed.trainer.current_epoch == 2
    # Same images, same augmentations, in the same order as the uninterrupted run.
    assert first_log.seen[:5] + resumed_log.seen == reference_log.seen
    # Same weights and sigmas at the end.
    expected, actual = reference.model.state_dict(), resumed.model.state_dict()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-6, msg=key)
    sigmas = {task: float(v) for task, v in resumed.model.weighting.sigmas().items()}
    expected_sigmas = {task: float(v) for task, v in reference.model.weighting.sigmas().items()}
    assert sigmas == pytest.approx(expected_sigmas, abs=1e-6)
    # Optimizer moments and the learning-rate schedule continue, not restart.
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(
        reference.trainer.optimizers[0].param_groups[0]["lr"]
    )
    ref_state = reference.trainer.optimizers[0].state_dict()["state"]
    res_state = resumed.trainer.optimizers[0].state_dict()["state"]
    assert ref_state[0]["step"] == res_state[0]["step"]
    torch.testing.assert_close(res_state[0]["exp_avg"], ref_state[0]["exp_avg"], atol=1e-6, rtol=0)


def test_resume_plumbing_is_a_callback_not_part_of_the_model():
    from types import SimpleNamespace

    from lightning.pytorch import LightningModule

    from mtlscene.callbacks import ExactResume
    from mtlscene.trainers import MultiTaskModule

    for hook in ("on_save_checkpoint", "on_load_checkpoint", "on_train_batch_start"):
        assert getattr(MultiTaskModule, hook) is getattr(LightningModule, hook), hook
    checkpoint: dict = {}
    ExactResume().on_save_checkpoint(None, None, checkpoint)
    expected = torch.rand(3)  # what the run would have drawn next
    torch.rand(5)  # the crashed process moved on
    restored = ExactResume()
    restored.on_load_checkpoint(None, None, checkpoint)
    loader = SimpleNamespace(marked=None)
    loader.mark_consumed = lambda count: setattr(loader, "marked", count)
    restored.on_train_batch_start(SimpleNamespace(train_dataloader=loader), None, None, 2)
    assert torch.equal(torch.rand(3), expected)
    assert loader.marked == 3  # this batch counts as consumed before the checkpoint


def test_iterating_an_evaluation_loader_leaves_the_global_rng_alone():
    # A resumed fit has no sanity check, so its first validation starts the (persistent)
    # loader iterator outside Lightning's RNG isolation: a draw there would change the
    # dropout of every later step, and the resumed run would end elsewhere.
    from mtlscene.data.loaders import evaluation_loader

    loader = evaluation_loader(torch.utils.data.TensorDataset(torch.arange(4.0)), 2, 0, False)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert [batch[0].tolist() for batch in loader] == [[0.0, 1.0], [2.0, 3.0]]
    assert torch.equal(torch.get_rng_state(), before)
