"""``aleatoric: true`` through the TaskHead interface: channels, losses, every weighting on top,
MC dropout, and the sigma maps of predict."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchmetrics import MeanMetric

from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.models.network import MultiTaskNetwork
from mtlscene.tasks import (
    DepthHead,
    InstanceHead,
    MetricDepthHead,
    SemanticHead,
    SurfaceNormalHead,
    TaskHead,
)
from mtlscene.tasks.epistemic import mc_dropout_passes, summarize_passes
from mtlscene.uncertainty.aleatoric import LOG_SCALE_BOUND, aleatoric_key
from mtlscene.weighting import WEIGHTING_METHODS, FixedWeighting

H, W = 8, 12
HEADS = {
    "semantic": (SemanticHead, 19),
    "instance": (InstanceHead, 2),
    "depth": (DepthHead, 1),
    "metric_depth": (MetricDepthHead, 1),
    "normal": (SurfaceNormalHead, 3),
}


class TinyEncoder(nn.Sequential):
    out_channels = 8

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def _batch(size: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    normal = nn.functional.normalize(torch.randn(size, 3, H, W, generator=generator), dim=1)
    return {
        "image": torch.rand(size, 3, H, W, generator=generator),
        "semantic": torch.randint(0, 19, (size, H, W), generator=generator),
        "instance_offset": torch.randn(size, 2, H, W, generator=generator),
        "instance_mask": torch.rand(size, H, W, generator=generator) > 0.5,
        "disparity": torch.rand(size, H, W, generator=generator) * 5,
        "disparity_mask": torch.rand(size, H, W, generator=generator) > 0.2,
        "depth": torch.rand(size, H, W, generator=generator) * 5,
        "depth_mask": torch.rand(size, H, W, generator=generator) > 0.2,
        "normal": normal,
        "normal_mask": torch.rand(size, H, W, generator=generator) > 0.2,
    }


def _network(aleatoric: bool, **options) -> MultiTaskNetwork:
    torch.manual_seed(0)
    heads = {
        name: cls(8, hidden_channels=8, num_layers=1, aleatoric=aleatoric, **options)
        for name, (cls, _) in HEADS.items()
    }
    return MultiTaskNetwork(TinyEncoder(), heads)


def _headline_metric(task: str, prediction: torch.Tensor, batch) -> tuple[str, float]:
    """A task's main metric worked out by hand from its prediction channels."""
    p = prediction.detach().double()
    if task == "semantic":  # every label of _batch() is a valid class
        return "pixel_accuracy", float((p.argmax(dim=1) == batch["semantic"]).double().mean())
    if task == "instance":  # L1 norm of the offset error, over instance pixels
        error = (p - batch["instance_offset"]).abs().sum(dim=1)
        return "mae", float(error[batch["instance_mask"]].mean())
    if task == "normal":  # angle to the unit target, in degrees
        cos = (p * batch["normal"].double()).sum(dim=1) / p.norm(dim=1)
        return "mean_angle", float(torch.rad2deg(torch.acos(cos))[batch["normal_mask"]].mean())
    target, key = {"depth": ("disparity", "mae"), "metric_depth": ("depth", "abs_err")}[task]
    error = (p[:, 0] - batch[target]).abs()
    return key, float(error[batch[f"{target}_mask"]].mean())


def test_every_head_keeps_its_prediction_channels_and_adds_a_bounded_log_scale():
    batch = _batch()
    plain, aleatoric = _network(False).eval(), _network(True).eval()
    before, after = plain(batch["image"]), aleatoric(batch["image"])
    assert set(before) == set(HEADS)
    assert set(after) == set(HEADS) | {aleatoric_key(name) for name in HEADS}
    for name, (_, channels) in HEADS.items():
        head = aleatoric.heads[name]
        assert after[name].shape == before[name].shape == (2, channels, H, W)
        assert after[aleatoric_key(name)].shape == (2, 1, H, W)
        assert after[aleatoric_key(name)].abs().max() < LOG_SCALE_BOUND
        # postprocess and metrics read the prediction channels only, as without aleatoric
        assert (
            head.postprocess(after[name]).shape == plain.heads[name].postprocess(before[name]).shape
        )
        metric = head.make_metrics()
        head.update_metrics(metric, after[name], batch)
        key, expected = _headline_metric(name, after[name], batch)
        assert float(metric.compute()[key]) == pytest.approx(expected, rel=1e-5), name
    assert torch.allclose(after["normal"].norm(dim=1), torch.ones(2, H, W), atol=1e-5)
    assert after["semantic"].shape[1] == 19


def _value_and_s_gradient(head, prediction, batch, s_value=0.3):
    """(loss value, d loss / d s at every pixel summed) of an aleatoric head's loss."""
    s = torch.full((2, 1, H, W), s_value, requires_grad=True)
    loss = head.compute_loss(prediction, batch, s)
    loss.backward()
    return float(loss.detach()), float(s.grad.sum())


def test_regression_losses_have_the_nll_gradient_and_the_error_value():
    """The gradient is the documented per-pixel NLL's; the value (what a weighting reads) is
    the mean error sum_c |r_c|, with no constant such as the bound on s."""
    batch = _batch()
    s = 0.3
    # depth, laplace: NLL exp(-s)|r| + s per valid pixel; d/ds of its mean: 1 - mean(exp(-s)|r|)
    depth = DepthHead(8, aleatoric=True)
    mask = batch["disparity_mask"]
    error = batch["disparity"][mask]
    value, grad = _value_and_s_gradient(depth, torch.zeros(2, 1, H, W), batch, s)
    assert value == pytest.approx(float(error.mean()), rel=1e-6)
    assert grad == pytest.approx(float(1 - math.exp(-s) * error.mean()), rel=1e-5)
    # instance, gaussian, D = 2: 0.5 exp(-s) ||r||^2 + 0.5 * 2 s; value: mean |dy| + |dx|
    instance = InstanceHead(8, aleatoric=True, aleatoric_likelihood="gaussian")
    mask = batch["instance_mask"]
    offsets = batch["instance_offset"].movedim(1, -1)[mask]
    value, grad = _value_and_s_gradient(instance, torch.zeros(2, 2, H, W), batch, s)
    assert value == pytest.approx(float(offsets.abs().sum(1).mean()), rel=1e-6)
    squared = offsets.square().sum(1).mean()
    assert grad == pytest.approx(float(1 - 0.5 * math.exp(-s) * squared), rel=1e-5)
    # normal: exp(-s) (1 - cos) + s (the von Mises-Fisher NLL); value: mean 1 - cos
    normal = SurfaceNormalHead(8, aleatoric=True)
    mask = batch["normal_mask"]
    prediction = torch.zeros(2, 3, H, W)
    prediction[:, 2] = 1
    one_minus_cos = (1 - batch["normal"][:, 2])[mask]
    value, grad = _value_and_s_gradient(normal, prediction, batch, s)
    assert value == pytest.approx(float(one_minus_cos.mean()), rel=1e-6)
    assert grad == pytest.approx(float(1 - math.exp(-s) * one_minus_cos.mean()), rel=1e-5)
    # the prediction's gradient is the NLL's too: exp(-s) sign(r) / n per valid pixel
    prediction = torch.zeros(2, 1, H, W, requires_grad=True)
    depth.compute_loss(prediction, batch, torch.full((2, 1, H, W), s)).backward()
    valid = batch["disparity_mask"]
    expected = -math.exp(-s) / int(valid.sum())  # r = 0 - disparity < 0
    assert float(prediction.grad[:, 0][valid].mean()) == pytest.approx(expected, rel=1e-5)
    assert float(prediction.grad[:, 0][~valid].abs().sum()) == 0.0
    # without aleatoric the loss is the plain one
    plain = DepthHead(8)
    assert float(plain.compute_loss(prediction[:, :1].detach(), batch)) == pytest.approx(
        float(plain.loss(prediction[:, :1].detach(), batch))
    )


def test_heads_declare_calibration_columns_outside_delta_m_only_when_aleatoric():
    assert [m.key for m in DepthHead(8).table_metrics] == ["mae"]
    columns = {m.key: m for m in DepthHead(8, aleatoric=True).table_metrics}
    assert set(columns) == {"mae", "nll", "ause", "coverage_1sigma", "coverage_2sigma"}
    assert columns["mae"].in_delta and not columns["ause"].in_delta
    assert "75.7" in columns["coverage_1sigma"].title  # laplace nominal
    gaussian = DepthHead(8, aleatoric=True, aleatoric_likelihood="gaussian").table_metrics
    assert "68.3" in {m.key: m for m in gaussian}["coverage_1sigma"].title
    semantic = {m.key for m in SemanticHead(8, aleatoric=True).table_metrics}
    assert semantic == {"miou", "nll", "ece"}
    with pytest.raises(ValueError, match="unknown likelihood 'cauchy'"):
        DepthHead(8, aleatoric=True, aleatoric_likelihood="cauchy")


class CountingHead(TaskHead):
    """A custom head with no per-pixel residual: aleatoric must be refused, clearly."""

    batch_keys = ("image",)
    out_channels = 1
    default_likelihood = "gaussian"

    def loss(self, prediction, batch):
        return prediction.mean()

    def make_metrics(self):
        return MeanMetric()

    def update_metrics(self, metric, prediction, batch):
        metric.update(prediction.mean())


class ResidualHead(CountingHead):
    """A custom regression head: implementing pixel_residuals is all aleatoric needs."""

    def pixel_residuals(self, prediction, batch):
        return prediction - batch["image"][:, :1], torch.ones_like(prediction[:, 0]).bool()


def test_custom_heads_get_aleatoric_through_pixel_residuals_or_a_clear_refusal():
    with pytest.raises(ValueError, match="CountingHead does not support aleatoric.*pixel_resid"):
        CountingHead(8, aleatoric=True)
    head = ResidualHead(8, aleatoric=True)
    raw = head(torch.randn(2, 8, 4, 4), (H, W))
    assert raw.shape == (2, 2, H, W)
    prediction, s = head.split_output(raw)
    loss = head.compute_loss(prediction, _batch(), s)
    loss.backward()
    assert head.decoder[-1].weight.grad[1].abs().sum() > 0  # the s channel learns


@pytest.mark.parametrize("method", sorted(WEIGHTING_METHODS))
def test_every_weighting_method_trains_aleatoric_heads(method):
    network = _network(True)
    heads = {name: network.heads[name] for name in ("semantic", "instance", "depth")}
    network = MultiTaskNetwork(TinyEncoder(), heads)
    if method == "fixed":
        weighting = FixedWeighting({"semantic": 1.0, "instance": 0.5, "depth": 0.5})
    else:
        weighting = WEIGHTING_METHODS[method]()
    weighting.bind({name: head.likelihood for name, head in heads.items()})
    batch = _batch()
    outputs = network(batch["image"])
    losses = {
        name: head.compute_loss(outputs[name], batch, outputs[aleatoric_key(name)])
        for name, head in heads.items()
    }
    assert all(float(loss.detach()) >= 0 for loss in losses.values())  # log/ratio weightings
    if weighting.requires_gradients:
        total = weighting(losses, shared=network.encoder, heads=heads)
    else:
        total = weighting(losses)
    total.backward()
    assert torch.isfinite(total)
    for head in heads.values():
        s_row = head.decoder[-1].weight.grad[-1]  # the log-scale channel's projection
        assert torch.isfinite(s_row).all() and s_row.abs().sum() > 0


def test_mc_dropout_varies_only_the_decoders_and_leaves_batchnorm_frozen():
    network = _network(True, dropout=0.5)  # MC dropout samples the dropout heads trained with
    images = _batch()["image"]
    network.train()
    network(images)  # non-trivial running statistics
    network.eval()
    reference = network(images)
    stats = [m.running_mean.clone() for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    passes = mc_dropout_passes(network, images, 4)
    assert not torch.allclose(passes[0]["depth"], passes[1]["depth"])
    assert not network.training
    after = [m.running_mean for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(stats, after, strict=True))
    again = network(images)  # dropout is off again
    assert torch.equal(again["depth"], reference["depth"])
    depth = summarize_passes(network.heads["depth"], "depth", passes)
    assert depth["epistemic_variance"].shape == (2, H, W)
    assert (depth["total_variance"] >= depth["epistemic_variance"]).all()
    semantic = summarize_passes(network.heads["semantic"], "semantic", passes)
    assert (semantic["mutual_information"] >= 0).all()
    assert semantic["mutual_information"].max() <= math.log(19) + 1e-5


def test_prediction_writer_saves_sigma_maps_with_a_colour_bar(tmp_path):
    writer = PredictionWriter(output_dir=str(tmp_path), benchmark=False)
    batch = {"image": torch.rand(1, 3, H * 4, W * 4), "name": ["frame"]}
    sigma = torch.rand(1, H * 4, W * 4) + 0.1
    outputs = {"depth": torch.rand(1, H * 4, W * 4), "sigma": {"depth": sigma}}
    writer._sources = {"semantic": None, "depth": "depth"}
    writer.write_image("frame", batch, outputs, 0)
    raw = np.load(tmp_path / "uncertainty" / "frame_depth_sigma.npy")
    assert np.allclose(raw, sigma[0].numpy())
    picture = np.asarray(Image.open(tmp_path / "pictures" / "frame_depth_sigma.png"))
    assert picture.shape[0] == H * 4 and picture.shape[1] > W * 4 + 10  # map + bar + labels
    panel = np.asarray(Image.open(tmp_path / "pictures" / "frame_panel.png"))
    assert panel.shape[1] > 3 * W * 4  # input, depth, depth sigma


def test_experiment_tables_bold_the_coverage_closest_to_nominal(tmp_path):
    from mtlscene.experiments.definition import Experiment, Row
    from mtlscene.experiments.summary import write_table

    columns = {"depth": [m.as_dict() for m in DepthHead(8, aleatoric=True).table_metrics]}

    def result(row, coverage):
        test = {"test/depth/mae": 1.0, "test/depth/coverage_1sigma": coverage}
        return {
            "row": row, "seed": 0, "tasks": ["depth", "semantic"], "test": test, "val": {},
            "sigma": {}, "weight": {}, "global_step": 1, "wall_time_s": 1.0, "log_dir": "none",
            "table_metrics": columns,
        }  # fmt: skip

    results = [result("over", 0.95), result("near", 0.70), result("under", 0.40)]
    experiment = Experiment("coverage", tuple(Row(r["row"]) for r in results))
    table = write_table(results, experiment, tmp_path / "table.md", seeds=1).read_text()
    bold = [line.split("|")[1].strip() for line in table.splitlines() if "**70.0" in line]
    assert bold == ["near"]  # 70 % is closest to the nominal 75.7 %, not the highest 95 %
    assert "**95.0" not in table
