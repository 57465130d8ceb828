"""Training behaviour: gradients reach every s, external tasks plug in, predictions."""

import textwrap
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from mtlscene.cli.main import build_cli
from mtlscene.evaluation.cityscapes_format import evaluate_pixel_level

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")

BOUNDARY_TASK = '''
"""A fourth task living outside mtlscene: semantic boundaries from the labels."""
import torch
from torchmetrics import MeanMetric

from mtlscene.tasks import Likelihood, TaskHead, register_task


def boundaries(semantic):
    edge = torch.zeros_like(semantic, dtype=torch.float32)
    edge[:, :, 1:] += (semantic[:, :, 1:] != semantic[:, :, :-1]).float()
    edge[:, 1:, :] += (semantic[:, 1:, :] != semantic[:, :-1, :]).float()
    return edge.clamp(max=1.0)


@register_task("boundary")
class BoundaryHead(TaskHead):
    default_likelihood = Likelihood.BOLTZMANN
    batch_keys = ("semantic",)
    out_channels = 1

    def loss(self, prediction, batch):
        target = boundaries(batch["semantic"])
        return torch.nn.functional.binary_cross_entropy_with_logits(prediction[:, 0], target)

    def make_metrics(self):
        return MeanMetric()

    def update_metrics(self, metric, prediction, batch):
        error = ((prediction[:, 0] > 0).float() - boundaries(batch["semantic"])).abs()
        metric.update(error.mean())
'''


class GradientProbe(pl.Callback):
    """Records, after each backward, which uncertainty parameters received a gradient."""

    def __init__(self):
        self.grads: list[dict[str, float]] = []

    def on_after_backward(self, trainer, pl_module):
        self.grads.append(
            {
                name: float(p.grad.abs()) if p.grad is not None else 0.0
                for name, p in pl_module.weighting.log_variance.items()
            }
        )


def test_gradients_reach_every_s_during_fit():
    cli = build_cli(["--config", TINY], run=False)
    probe = GradientProbe()
    cli.trainer.callbacks.append(probe)
    before = {name: float(s) for name, s in cli.model.weighting.log_variances().items()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(probe.grads) == 2
    for step in probe.grads:
        assert set(step) == {"semantic", "instance", "depth"}
        assert all(g > 0 and np.isfinite(g) for g in step.values())
    after = cli.model.weighting.log_variances()
    assert all(float(after[name]) != before[name] for name in before)
    # s is in its own parameter group, without weight decay and with its own lr.
    group = cli.trainer.optimizers[0].param_groups[1]
    assert group["name"] == "uncertainty" and group["weight_decay"] == 0.0
    assert group["lr"] == 0.05


def test_a_task_registered_outside_the_package_trains(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent(BOUNDARY_TASK))
    monkeypatch.syspath_prepend(str(tmp_path))
    cli = build_cli(
        [
            "fit",
            "--config",
            TINY,
            "--model.task_modules",
            "[my_tasks]",
            "--model.tasks",
            "{semantic: {}, instance: {}, depth: {}, boundary: {hidden_channels: 8}}",
        ]
    )
    assert set(cli.model.heads) == {"semantic", "instance", "depth", "boundary"}
    metrics = cli.trainer.callback_metrics
    # The external head's metric (its MeanMetric, logged as "value") is its boundary error
    # rate on the validation images, recomputed here with the trained network.
    batch_errors = []
    with torch.no_grad():
        for batch in cli.datamodule.val_dataloader():
            predicted = cli.model.eval()(batch["image"])["boundary"][:, 0].numpy() > 0
            labels = batch["semantic"].numpy()
            edge = np.zeros(labels.shape, dtype=bool)
            edge[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
            edge[:, 1:, :] |= labels[:, 1:, :] != labels[:, :-1, :]
            batch_errors.append(np.mean(predicted != edge))
    assert float(metrics["val/boundary/value"]) == pytest.approx(np.mean(batch_errors), abs=1e-6)
    assert "uncertainty/sigma/boundary" in metrics
    assert cli.model.weighting.likelihoods["boundary"].value == "boltzmann"


def test_predict_writes_pictures_and_official_results_matching_our_miou():
    fit = build_cli(["fit", "--config", TINY])
    checkpoint = fit.trainer.checkpoint_callback.last_model_path
    validate = build_cli(["validate", "--config", TINY, "--ckpt_path", checkpoint])
    ours = float(validate.trainer.callback_metrics["val/semantic/miou"])
    build_cli(
        [
            "predict",
            "--config",
            TINY,
            "--ckpt_path",
            checkpoint,
            "--trainer.callbacks+=mtlscene.callbacks.PredictionWriter",
            "--trainer.callbacks.output_dir=predictions",
        ]
    )
    pictures = sorted(Path("predictions/pictures").glob("*_panel.png"))
    assert len(pictures) == 2
    panel = np.asarray(Image.open(pictures[0]))
    assert panel.shape[1] > 4 * 64  # input + semantic + instances + depth side by side
    semantic = sorted(Path("predictions/cityscapes/semantic").glob("*_pred_labelIds.png"))
    assert len(semantic) == 2
    assert list(Path("predictions/cityscapes/instance").glob("*_pred_instances.txt"))
    official = evaluate_pixel_level("data/tiny_synthetic", "val", "predictions/cityscapes/semantic")
    assert official["miou"] == pytest.approx(ours, abs=1e-3)


def test_non_finite_loss_names_task_and_step():
    cli = build_cli(["--config", TINY], run=False)
    depth_head = cli.model.heads["depth"]
    original = depth_head.loss
    depth_head.loss = lambda prediction, batch: original(prediction, batch) * float("nan")
    with pytest.raises(FloatingPointError, match=r"task\(s\) depth \(first at global step 0\)"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def test_exact_boltzmann_fit_scales_the_semantic_logits_and_moves_its_s():
    cli = build_cli(["--config", TINY, "--model.weighting.init_args.boltzmann=exact"], run=False)
    before = float(cli.model.weighting.log_variances()["semantic"])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    after = cli.model.weighting.log_variances()
    assert float(after["semantic"]) != before
    assert set(cli.model.weighting.prediction_scales()) == {"semantic"}
    assert np.isfinite(float(cli.trainer.callback_metrics["train/loss_total"]))
