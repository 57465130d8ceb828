"""Per-pixel uncertainty end to end: fit/test/predict through the CLI, the Python accessor after
load_from_checkpoint, and DDP-exact calibration metrics (two gloo processes)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from calibration_ranks import calibration_metrics, rank_worker

from mtlscene.cli.main import build_cli
from mtlscene.trainers.multitask import MultiTaskModule

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
ALEATORIC = [
    "--model.tasks",
    "{semantic: {hidden_channels: 8, num_layers: 1, aleatoric: true, aleatoric_samples: 4}, "
    "instance: {hidden_channels: 8, num_layers: 1, aleatoric: true}, "
    "depth: {hidden_channels: 8, num_layers: 1, aleatoric: true}}",
]


def test_fit_test_predict_and_load_from_checkpoint_give_uncertainty():
    fit = build_cli(["fit", "--config", TINY, *ALEATORIC])
    checkpoint = fit.trainer.checkpoint_callback.last_model_path
    test = build_cli(["test", "--config", TINY, *ALEATORIC, "--ckpt_path", checkpoint])
    metrics = test.trainer.callback_metrics
    for key in (
        "test/semantic/nll",
        "test/semantic/ece",
        "test/depth/nll",
        "test/depth/ause",
        "test/depth/coverage_1sigma",
        "test/depth/coverage_2sigma",
        "test/instance/ause",
    ):
        assert key in metrics and np.isfinite(float(metrics[key])), key
    assert "test/semantic/miou" in metrics and "test/depth/mae" in metrics  # unchanged
    figures = {path.name for path in Path("runs/tiny").rglob("uncertainty/*.png")}
    assert {"test_semantic_reliability.png", "test_depth_sparsification.png"} <= figures

    build_cli(
        [
            "predict",
            "--config",
            TINY,
            *ALEATORIC,
            "--ckpt_path",
            checkpoint,
            "--trainer.callbacks+=mtlscene.callbacks.PredictionWriter",
            "--trainer.callbacks.output_dir=predictions",
            "--trainer.callbacks.benchmark=false",
        ]
    )
    assert len(list(Path("predictions/uncertainty").glob("*_depth_sigma.npy"))) == 2
    assert len(list(Path("predictions/pictures").glob("*_semantic_sigma.png"))) == 2

    model = MultiTaskModule.load_from_checkpoint(checkpoint, weights_only=True)
    images = torch.rand(2, 3, 32, 64)
    result = model.predict_with_uncertainty(images)
    assert result["depth"]["prediction"].shape == result["depth"]["sigma"].shape == (2, 32, 64)
    assert (result["depth"]["sigma"] > 0).all()
    assert result["semantic"]["prediction"].dtype == torch.int64
    assert torch.equal(
        result["semantic"]["prediction"], model(images)["semantic"].argmax(1)
    )  # the prediction is the plain argmax
    with pytest.raises(ValueError, match="trained without"):  # no head trained with dropout
        model.predict_with_uncertainty(images, mc_dropout=3)
    for head in model.heads.values():  # (as if trained with it: MC dropout now runs)
        head.dropout = 0.1
    with_mc = model.predict_with_uncertainty(images, mc_dropout=3)
    assert with_mc["semantic"]["mutual_information"].shape == (2, 32, 64)
    assert with_mc["depth"]["total_variance"].shape == (2, 32, 64)


@pytest.mark.slow
def test_calibration_metrics_are_the_same_on_two_processes_as_on_one():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=rank_worker, args=(r, port, queue)) for r in range(2)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    single = calibration_metrics(None)
    for key, value in single.items():
        assert results[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        assert results[1][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
