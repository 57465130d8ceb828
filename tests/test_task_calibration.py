"""Calibration for every row (``model.calibration``): the softmax of a plain semantic head,
and a regression head read with the weighting's task sigma, against values worked out by
hand on tiny tensors."""

import math
import warnings

import pytest
import torch
from torch import nn

from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.uncertainty.aleatoric import PixelLikelihood, log_scale_for_mean_error
from mtlscene.weighting import EqualWeighting, SettledUncertaintyWeighting, UncertaintyWeighting


class TinyEncoder(nn.Sequential):
    out_channels = 8

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def _model(weighting, depth: dict | None = None) -> MultiTaskModule:
    small = {"hidden_channels": 8, "num_layers": 1}
    tasks = {"semantic": small, "instance": small, "depth": {**small, **(depth or {})}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a test backbone that checkpoints cannot describe
        return MultiTaskModule(
            backbone=TinyEncoder(),
            tasks=tasks,
            weighting=weighting,
            instance_ap=False,
            panoptic_quality=False,
            calibration=True,
        )


def _outputs_and_batch():
    """Two semantic pixels; three valid depth pixels with |r| = 1, 3, 7 (prediction 0)."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    semantic = torch.tensor([0, 2]).reshape(1, 1, 2)  # A right, B wrong (argmax 1)
    outputs = {
        "semantic": torch.cat([logits, torch.full((1, 16, 1, 2), -30.0)], dim=1),
        "instance": torch.zeros(1, 2, 1, 2),
        "depth": torch.zeros(1, 1, 2, 2),
    }
    batch = {
        "semantic": semantic,
        "instance_offset": torch.tensor([[1.0, -2.0], [0.5, 0.0]]).reshape(1, 2, 1, 2),
        "instance_mask": torch.tensor([[True, True]]).reshape(1, 1, 2),
        "disparity": torch.tensor([[1.0, 3.0], [7.0, 0.0]]).reshape(1, 2, 2),
        "disparity_mask": torch.tensor([[True, True], [True, False]]).reshape(1, 2, 2),
    }
    return outputs, batch


def _computed(model, outputs, batch) -> dict[str, dict[str, float]]:
    model._update_calibration("test", outputs, batch)
    return {
        task: {key: float(value) for key, value in metric.compute().items()}
        for task, metric in model.calibration_metrics["test"].items()
    }


def _softmax_nll_and_ece(scale: float = 1.0) -> tuple[float, float]:
    """By hand: pixel A logits (2, 0, 0) label 0, pixel B (0, 1, 0) label 2 (16 more classes
    at -30 carry no mass); ECE = mean over the two pixels of |accuracy - confidence|, since
    they fall in different bins."""
    e2, e1 = math.exp(2 * scale), math.exp(scale)
    p_a = e2 / (e2 + 2)  # confidence of A, right
    conf_b, p_b_label = e1 / (e1 + 2), 1 / (e1 + 2)  # B predicts class 1, label 2
    return (-math.log(p_a) - math.log(p_b_label)) / 2, ((1 - p_a) + conf_b) / 2


def test_task_sigma_gives_the_regressions_a_laplace_and_the_softmax_its_own():
    model = _model(UncertaintyWeighting())
    with torch.no_grad():  # depth's gaussian term: w = 0.5 exp(-s) = 0.25, settled at L = 2
        model.weighting.log_variance["depth"].fill_(math.log(2.0))
    assert float(model.weighting.error_scales()["depth"]) == pytest.approx(2.0)
    values = _computed(model, *_outputs_and_batch())
    # depth: Laplace with b = 2 at every pixel (sigma = 2 sqrt 2), |r| = 1, 3, 7
    depth = values["depth"]
    assert depth["nll"] == pytest.approx((1 + 3 + 7) / 2 / 3 + math.log(2.0), rel=1e-6)
    assert depth["mean_sigma"] == pytest.approx(2 * math.sqrt(2), rel=1e-6)
    assert depth["coverage_1sigma"] == pytest.approx(1 / 3)  # |r| <= 2.83: only 1
    assert depth["coverage_2sigma"] == pytest.approx(2 / 3)  # <= 5.66: 1 and 3
    # one sigma ranks no pixel: AUSE is the random order's, (10/3) ln(3/2) + (2/3) ln 2
    random_gap = 10 / 3 * math.log(1.5) + 2 / 3 * math.log(2.0)
    assert depth["ause_random"] == pytest.approx(random_gap, rel=1e-6)
    assert depth["ause"] == pytest.approx(random_gap, rel=1e-6)
    # instance (D = 2, s = 0: L = 1): b = 1/2 per component; |r| = 1, 2, 0.5, 0
    instance = values["instance"]
    components = [1.0, 2.0, 0.5, 0.0]
    nll = (sum(components) / 0.5 + 2 * 2 * math.log(0.5)) / 2  # per pixel: sum |r| / b + D ln b
    assert instance["nll"] == pytest.approx(nll, rel=1e-6)
    assert instance["coverage_1sigma"] == pytest.approx(2 / 4)  # sigma = sqrt 2 / 2 = 0.71
    nll_expected, ece_expected = _softmax_nll_and_ece()
    assert values["semantic"]["nll"] == pytest.approx(nll_expected, rel=1e-5)
    assert values["semantic"]["ece"] == pytest.approx(ece_expected, rel=1e-5)


def test_exact_boltzmann_calibrates_the_scaled_softmax_it_trained():
    model = _model(UncertaintyWeighting(boltzmann="exact"))
    with torch.no_grad():
        model.weighting.log_variance["semantic"].fill_(math.log(2.0))  # logits x 1/2
    values = _computed(model, *_outputs_and_batch())
    nll_expected, ece_expected = _softmax_nll_and_ece(scale=0.5)
    assert values["semantic"]["nll"] == pytest.approx(nll_expected, rel=1e-5)
    assert values["semantic"]["ece"] == pytest.approx(ece_expected, rel=1e-5)


def test_without_a_task_sigma_a_regression_has_no_distribution_but_the_softmax_has():
    model = _model(EqualWeighting())
    assert set(model.calibration_metrics["test"]) == {"semantic"}
    columns = {task: [m.key for m in metrics] for task, metrics in model.table_metrics().items()}
    assert columns["semantic"] == ["miou", "nll", "ece"]
    assert columns["depth"] == ["mae"]
    values = _computed(model, *_outputs_and_batch())
    assert values["semantic"]["nll"] == pytest.approx(_softmax_nll_and_ece()[0], rel=1e-5)
    # off by default: no calibration metric at all for heads without per-pixel sigma
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = MultiTaskModule(backbone=TinyEncoder(), instance_ap=False, panoptic_quality=False)
    assert len(plain.calibration_metrics["test"]) == 0


def test_settled_weights_read_the_running_loss_and_columns_match_the_aleatoric_ones():
    weighting = SettledUncertaintyWeighting(momentum=0.0)
    model = _model(weighting)
    weighting({"semantic": torch.tensor(0.5), "instance": torch.tensor(3.0),
               "depth": torch.tensor(1.5)})  # fmt: skip
    assert float(weighting.error_scales()["depth"]) == pytest.approx(1.5)  # = Lbar
    values = _computed(model, *_outputs_and_batch())
    assert values["depth"]["mean_sigma"] == pytest.approx(1.5 * math.sqrt(2), rel=1e-6)
    # the task-level columns are the aleatoric head's: same keys, titles and nominal values
    aleatoric = _model(EqualWeighting(), depth={"aleatoric": True}).table_metrics()["depth"]
    assert model.table_metrics()["depth"] == aleatoric


def test_log_scale_for_a_mean_error_by_hand():
    laplace = log_scale_for_mean_error(torch.tensor(3.0), 2, PixelLikelihood.LAPLACE)
    assert float(laplace) == pytest.approx(math.log(1.5))  # b = E|r| per component
    gaussian = log_scale_for_mean_error(torch.tensor(1.0), 1, PixelLikelihood.GAUSSIAN)
    assert float(gaussian) == pytest.approx(math.log(math.pi / 2))  # sigma = E|r| sqrt(pi/2)


def test_the_uncertainty_experiment_measures_calibration_in_every_row():
    """Every row logs the same calibration columns, and "both" gives each task one noise
    model: per-pixel sigma (instance, depth) or a learned task sigma (semantics)."""
    from mtlscene.cli.main import parse_config
    from mtlscene.experiments.definition import load_experiment, resolve_config

    experiment = load_experiment(resolve_config("experiments/uncertainty.yaml"))
    per_pixel = {}
    for row in experiment.rows:
        args = [arg for base in experiment.base for arg in ("--config", str(resolve_config(base)))]
        config = parse_config(args + row.config_args())
        assert config.model.calibration is True, row.name
        weighting = config.model.weighting.class_path.rsplit(".", 1)[-1]
        tasks = config.model.tasks
        per_pixel[row.name] = (weighting, {t for t, o in tasks.items() if o.get("aleatoric")})
    assert list(per_pixel.values()) == [
        ("UncertaintyWeighting", set()),
        ("EqualWeighting", {"semantic", "instance", "depth"}),
        ("UncertaintyWeighting", {"instance", "depth"}),
    ]
