"""Checkpoints describe their model: plain-Python loading rebuilds it without pickle."""

import sys
from pathlib import Path

import lightning
import pytest
import torch

from mtlscene.cli.main import build_cli
from mtlscene.models import DeepLabEncoder
from mtlscene.postprocess import CentroidVoteClustering
from mtlscene.trainers import MultiTaskModule
from mtlscene.weighting import FixedWeighting, UncertaintyWeighting

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
# Non-default parts everywhere: ResNet-18 at stride 16 (default ResNet-101 at 8), fixed
# weights (default learned), a clustering with its own thresholds.
FIXED = (
    '{"class_path": "mtlscene.weighting.FixedWeighting", '
    '"init_args": {"weights": {"semantic": 1.0, "instance": 0.5, "depth": 0.1}}}'
)
CLUSTERING = (
    '{"class_path": "mtlscene.postprocess.CentroidVoteClustering", '
    '"init_args": {"min_votes": 1.0, "min_pixels": 2}}'
)


def _assert_same_predictions(expected: MultiTaskModule, actual: MultiTaskModule) -> None:
    image = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    batch = {"image": image}
    expected.eval(), actual.eval()
    with torch.no_grad():
        want = expected.predict_step(batch, 0)["prediction"]
        got = actual.predict_step(batch, 0)["prediction"]
        torch.testing.assert_close(actual(image), expected(image), rtol=0, atol=0)
    assert set(got) == set(want)
    for key in ("semantic", "instance", "depth"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    for got_image, want_image in zip(got["instances"], want["instances"], strict=True):
        for key in want_image:
            torch.testing.assert_close(got_image[key], want_image[key], rtol=0, atol=0)


def test_cli_checkpoint_loads_in_plain_python_with_the_same_parts():
    fit = build_cli(
        ["fit", "--config", TINY, "--model.weighting", FIXED, "--model.clustering", CLUSTERING]
    )
    path = fit.trainer.checkpoint_callback.last_model_path

    loaded = MultiTaskModule.load_from_checkpoint(path, weights_only=True, map_location="cpu")

    assert isinstance(loaded.weighting, FixedWeighting)
    assert loaded.weighting.weights() == {"semantic": 1.0, "instance": 0.5, "depth": 0.1}
    assert isinstance(loaded.network.encoder, DeepLabEncoder)
    assert len(loaded.network.encoder.resnet.layers[2]) == 2  # ResNet-18's layer3 blocks
    assert loaded.network.encoder.output_stride == 16
    assert loaded.clustering.min_pixels == 2 and loaded.clustering.min_votes == 1.0
    _assert_same_predictions(fit.model, loaded)


def test_plain_python_model_round_trips_through_a_checkpoint(tmp_path):
    model = MultiTaskModule(
        backbone=DeepLabEncoder("resnet18", output_stride=16, aspp_channels=8),
        tasks={"semantic": {"hidden_channels": 8}, "instance": {}, "depth": {"num_layers": 1}},
        weighting=UncertaintyWeighting(init_log_variance={"depth": 0.5}, clamp=(-3.0, 3.0)),
        clustering=CentroidVoteClustering(vote_kernel=5),
    )
    with torch.no_grad():
        model.weighting.log_variance["semantic"].fill_(0.25)
    path = tmp_path / "plain.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )

    loaded = MultiTaskModule.load_from_checkpoint(path, weights_only=True)

    assert loaded.weighting.clamp == (-3.0, 3.0)
    assert loaded.weighting.log_variances()["semantic"] == pytest.approx(0.25)
    assert loaded.clustering.vote_kernel == 5
    assert loaded.heads["depth"].decoder[0].out_channels == 128  # default hidden width
    _assert_same_predictions(model, loaded)


def test_checkpoint_naming_unimported_code_is_refused(tmp_path):
    model = MultiTaskModule(
        backbone=DeepLabEncoder("resnet18", output_stride=32, aspp_channels=8),
        tasks={"depth": {"hidden_channels": 4, "num_layers": 1}},
    )
    hparams = dict(model.hparams)
    hparams["backbone"] = {"class_path": "not_imported_pkg.Backbone", "init_args": {}}
    path = tmp_path / "evil.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    with pytest.raises(ValueError, match="model.backbone: 'not_imported_pkg.Backbone'"):
        MultiTaskModule.load_from_checkpoint(path, weights_only=True)
    with pytest.raises(ValueError, match="not_imported_pkg.Backbone"):
        build_cli(["validate", "--config", TINY, "--ckpt_path", str(path)])
    assert "not_imported_pkg" not in sys.modules
    # Passing the part explicitly replaces the stored description.
    loaded = MultiTaskModule.load_from_checkpoint(
        path,
        weights_only=True,
        backbone=DeepLabEncoder("resnet18", output_stride=32, aspp_channels=8),
    )
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
