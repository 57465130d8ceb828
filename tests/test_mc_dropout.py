"""MC dropout and Monte-Carlo sampling: heads that train with dropout, ``mtlscene predict
--mc_dropout``, the refusal for checkpoints trained without dropout, the semantic loss's
mean-field estimator, and a dedicated seeded generator for every sample drawn outside
training."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mtlscene.cli.main import build_cli, main
from mtlscene.tasks import DepthHead, SemanticHead
from mtlscene.tasks.noisy_softmax import (
    mean_field_log_probabilities,
    noisy_softmax_cross_entropy,
)
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.uncertainty.aleatoric import mc_cross_entropy

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
H, W = 16, 32


class TinyEncoder(nn.Sequential):
    out_channels = 8

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def _model(**options) -> MultiTaskModule:
    """Semantic (aleatoric, sampled loss), depth and instance heads on a one-layer encoder;
    ``options``: task -> extra head options (e.g. dropout)."""
    tasks = {
        "semantic": {"hidden_channels": 8, "num_layers": 1, "aleatoric": True},
        "instance": {"hidden_channels": 8, "num_layers": 1},
        "depth": {"hidden_channels": 8, "num_layers": 1, "aleatoric": True},
    }
    for task, extra in options.items():
        tasks[task] = {**tasks[task], **extra}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a test backbone that checkpoints cannot describe
        return MultiTaskModule(
            backbone=TinyEncoder(), tasks=tasks, instance_ap=False, panoptic_quality=False
        )


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "image": torch.rand(2, 3, H, W, generator=generator),
        "semantic": torch.randint(0, 19, (2, H, W), generator=generator),
        "instance_offset": torch.randn(2, 2, H, W, generator=generator),
        "instance_mask": torch.rand(2, H, W, generator=generator) > 0.5,
        "disparity": torch.rand(2, H, W, generator=generator) * 5,
        "disparity_mask": torch.rand(2, H, W, generator=generator) > 0.2,
    }


def test_dropout_option_trains_with_dropout_and_zero_keeps_todays_numerics():
    features = torch.randn(2, 8, 4, 6)
    torch.manual_seed(0)
    plain = DepthHead(8, hidden_channels=8, num_layers=1)
    torch.manual_seed(0)
    dropped = DepthHead(8, hidden_channels=8, num_layers=1, dropout=0.5)
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # no layer, no weights
    plain.train(), dropped.train()
    state = torch.get_rng_state()
    first = plain(features, (4, 6))
    assert torch.equal(torch.get_rng_state(), state)  # dropout 0 draws nothing
    assert torch.equal(plain(features, (4, 6)), first)
    with_dropout = [dropped(features, (4, 6)) for _ in range(2)]
    assert not torch.allclose(with_dropout[0], with_dropout[1])  # masks redrawn per step
    dropped.eval()
    assert torch.equal(dropped(features, (4, 6)), plain.eval()(features, (4, 6)))
    with pytest.raises(ValueError, match="dropout must be in"):
        DepthHead(8, dropout=1.0)


def test_predict_with_uncertainty_refuses_mc_dropout_on_heads_trained_without():
    model = _model()
    with pytest.raises(ValueError) as refusal:
        model.predict_with_uncertainty(torch.rand(1, 3, H, W), mc_dropout=4)
    message = str(refusal.value)
    assert "\n" not in message
    assert "semantic, instance, depth: dropout 0" in message
    assert "model.tasks.<task>.dropout > 0" in message


def test_mc_dropout_maps_repeat_leave_the_global_stream_alone_and_skip_undropped_heads():
    model = _model(depth={"dropout": 0.3}, semantic={"dropout": 0.3})
    images = torch.rand(2, 3, H, W)
    state = torch.get_rng_state()
    first = model.predict_with_uncertainty(images, mc_dropout=4)
    assert torch.equal(torch.get_rng_state(), state)
    again = model.predict_with_uncertainty(images, mc_dropout=4)
    other_seed = model.predict_with_uncertainty(images, mc_dropout=4, seed=1)
    variance = first["depth"]["epistemic_variance"]
    assert variance.shape == (2, H, W) and (variance >= 0).all() and variance.mean() > 0
    assert torch.equal(variance, again["depth"]["epistemic_variance"])
    assert not torch.equal(variance, other_seed["depth"]["epistemic_variance"])
    assert (first["depth"]["total_variance"] >= variance + 0.1).all()  # + sigma^2 (~1.8)
    information = first["semantic"]["mutual_information"]
    assert (information >= 0).all() and information.max() > 0
    assert information.max() <= math.log(19) + 1e-5
    assert "epistemic_variance" not in first["instance"]  # trained without dropout


def test_mc_dropout_variance_is_the_variance_of_the_passes():
    from mtlscene.tasks.epistemic import mc_dropout_passes, summarize_passes
    from mtlscene.tasks.sampling import mc_generator

    model = _model(depth={"dropout": 0.5}).eval()
    images = torch.rand(1, 3, H, W)
    passes = mc_dropout_passes(model.network, images, 5, mc_generator("cpu"))
    depth = torch.stack([p["depth"][:, 0] for p in passes])
    streamed = summarize_passes(model.heads["depth"], "depth", passes)
    assert torch.allclose(streamed["epistemic_variance"], depth.var(0, unbiased=False), atol=1e-6)
    head = model.heads["depth"]
    aleatoric = torch.stack([head.sigma(p["depth/aleatoric"]).square() for p in passes]).mean(0)
    assert torch.allclose(streamed["total_variance"], depth.var(0, unbiased=False) + aleatoric)
    # The same generator state gives the same passes as predict_with_uncertainty's.
    maps = model.predict_with_uncertainty(images, mc_dropout=5)
    assert torch.allclose(maps["depth"]["epistemic_variance"], streamed["epistemic_variance"])


def test_validation_loss_draws_from_its_own_seeded_stream():
    model = _model(semantic={"aleatoric_estimator": "sampled"}).eval()
    batch = _batch()
    state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        outputs = model.validation_step(batch, 0)
        losses = [model.task_losses(outputs, batch)["semantic"] for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(losses[0], losses[1])  # repeatable
    # It is the sampled loss (noise makes it differ from the plain cross-entropy).
    plain = nn.functional.cross_entropy(outputs["semantic"], batch["semantic"])
    assert abs(float(losses[0].detach()) - float(plain.detach())) > 1e-4


def _random_pixels(classes: int = 19, pixels: int = 500, scale: float = 2.0):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, classes, pixels, 1, generator=generator) * scale
    s = torch.empty(1, 1, pixels, 1).uniform_(-4, 4, generator=generator)
    target = torch.randint(0, classes, (1, pixels, 1), generator=generator)
    return logits, s, target


def test_mean_field_loss_is_closer_to_the_large_sample_reference_than_ten_samples():
    logits, s, target = _random_pixels()

    def sampled(samples: int, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        return float(
            noisy_softmax_cross_entropy(logits, s, target, 255, "sampled", samples, generator)
        )

    reference = sampled(2000, 2)
    mean_field = float(noisy_softmax_cross_entropy(logits, s, target, 255, "mean_field"))
    # Measured: mean field -2.9 %, T = 10 +9.2 % (the log of a 10-sample mean is biased up).
    assert abs(mean_field - reference) / reference < 0.04
    assert abs(mean_field - reference) < abs(sampled(10, 3) - reference)
    # Without noise it is the plain cross-entropy.
    quiet = torch.full_like(s, -30.0)
    plain = nn.functional.cross_entropy(logits, target)
    assert float(noisy_softmax_cross_entropy(logits, quiet, target, 255)) == pytest.approx(
        float(plain), rel=1e-5
    )


def test_mean_field_noise_helps_wrong_pixels_and_costs_right_ones():
    logits = torch.tensor([4.0, 0.0, -1.0]).view(1, 3, 1, 1)
    s = torch.zeros(1, 1, 1, 1, requires_grad=True)
    for label, sign in ((0, 1.0), (2, -1.0)):  # right: loss grows with s; wrong: falls
        s.grad = None
        target = torch.tensor([[[label]]])
        noisy_softmax_cross_entropy(logits, s, target, 255).backward()
        assert sign * float(s.grad) > 0
    log_probs = mean_field_log_probabilities(logits, torch.full((1, 1, 1, 1), 20.0))
    assert torch.allclose(log_probs.exp(), torch.full_like(log_probs, 1 / 3), atol=0.02)


def test_sampled_estimator_keeps_the_old_monte_carlo_loss():
    logits, s, target = _random_pixels(pixels=64)
    head = SemanticHead(8, aleatoric=True, aleatoric_estimator="sampled").train()
    torch.manual_seed(5)
    new = head.aleatoric_loss(logits, s, {"semantic": target})
    torch.manual_seed(5)
    old = mc_cross_entropy(logits, s, target, 10, 255)
    assert torch.equal(new, old)
    with pytest.raises(ValueError, match="aleatoric_estimator: unknown estimator 'exact'"):
        SemanticHead(8, aleatoric=True, aleatoric_estimator="exact")


TASKS = "{{semantic: {{hidden_channels: 8, num_layers: 1}}, instance: {{hidden_channels: 8, num_layers: 1}}, depth: {{hidden_channels: 8, num_layers: 1{depth}}}}}"  # noqa: E501


def test_predict_mc_dropout_writes_epistemic_maps_and_refuses_undropped_checkpoints(capsys):
    tasks = ["--model.tasks", TASKS.format(depth=", dropout: 0.2")]
    dropped = build_cli(["fit", "--config", TINY, *tasks])
    checkpoint = dropped.trainer.checkpoint_callback.last_model_path
    saved = torch.load(checkpoint, weights_only=True)["hyper_parameters"]["tasks"]
    assert saved["depth"]["dropout"] == 0.2  # recorded with the head's options
    build_cli(
        [
            "predict",
            "--config",
            TINY,
            *tasks,
            "--ckpt_path",
            checkpoint,
            "--mc_dropout",
            "3",
            "--trainer.callbacks+=mtlscene.callbacks.PredictionWriter",
            "--trainer.callbacks.output_dir=predictions",
            "--trainer.callbacks.benchmark=false",
        ]
    )
    maps = sorted(Path("predictions/uncertainty").glob("*_depth_epistemic_variance.npy"))
    assert len(maps) == 2  # the two test images
    assert all(np.isfinite(np.load(m)).all() and np.load(m).max() > 0 for m in maps)
    assert len(list(Path("predictions/pictures").glob("*_depth_epistemic_variance.png"))) == 2
    assert not list(Path("predictions/uncertainty").glob("*_semantic_*"))  # no dropout there

    # The same weights saved as trained without dropout (the head options of tiny.yaml).
    content = torch.load(checkpoint, weights_only=True)
    del content["hyper_parameters"]["tasks"]["depth"]["dropout"]
    undropped = str(Path(checkpoint).with_name("undropped.ckpt"))
    torch.save(content, undropped)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--config", TINY, "--ckpt_path", undropped, "--mc_dropout", "3"])
    assert stop.value.code == 2
    message = capsys.readouterr().err.splitlines()[0]
    assert message.startswith("mtlscene: error: --mc_dropout 3:")
    assert f"checkpoint {undropped} was trained without" in message
    assert "dropout 0" in message and "model.tasks.<task>.dropout > 0" in message
