"""Likelihoods that weigh honestly: no task weight follows the bound on s, and a task with
per-pixel sigma keeps weight 1 under the weightings built on task-level sigma."""

import functools
import math
import warnings

import pytest
import torch
from torch import nn

from mtlscene.tasks import base
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.uncertainty import aleatoric
from mtlscene.uncertainty.aleatoric import bound_log_scale
from mtlscene.weighting import (
    WEIGHTING_METHODS,
    ComposedWeighting,
    PCGradWeighting,
    SettledUncertaintyWeighting,
    UncertaintyWeighting,
)

H, W = 8, 12
PER_PIXEL = {"instance", "depth"}
# Every family that reads loss values (learned and settled sigma, the loss-ratio methods,
# a composed one), and a gradient method for completeness.
METHODS = (
    "uncertainty",
    "settled_uncertainty",
    "uw_so",
    "dwa",
    "gls",
    "famo",
    "imtl_l",
    "gradnorm",
    "uncertainty_pcgrad",
    "mgda",
)


class TinyEncoder(nn.Sequential):
    out_channels = 8

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(2, 3, H, W, generator=generator),
        "semantic": torch.randint(0, 19, (2, H, W), generator=generator),
        "instance_offset": torch.randn(2, 2, H, W, generator=generator),
        "instance_mask": torch.rand(2, H, W, generator=generator) > 0.5,
        "disparity": torch.rand(2, H, W, generator=generator) * 5,
        "disparity_mask": torch.rand(2, H, W, generator=generator) > 0.2,
    }


def _weighting(method: str):
    if method == "uncertainty_pcgrad":
        return ComposedWeighting(UncertaintyWeighting(), PCGradWeighting())
    return WEIGHTING_METHODS[method]()


def _model(method: str, **options) -> MultiTaskModule:
    """Semantic without per-pixel sigma; instance (gaussian) and depth (laplace) with it."""
    small = {"hidden_channels": 8, "num_layers": 1}
    tasks = {
        "semantic": small,
        "instance": {**small, "aleatoric": True, "aleatoric_likelihood": "gaussian"},
        "depth": {**small, "aleatoric": True},
    }
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a test backbone that checkpoints cannot describe
        return MultiTaskModule(
            backbone=TinyEncoder(),
            tasks=tasks,
            weighting=_weighting(method),
            instance_ap=False,
            panoptic_quality=False,
            **options,
        )


def _weight_trajectory(method: str, steps: int = 6) -> list[dict[str, float]]:
    """The weights after each of ``steps`` SGD steps (an epoch ends every 2 steps, so DWA
    leaves its uniform start)."""
    model = _model(method)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batch = _batch()
    trajectory = []
    for step in range(steps):
        total, _ = model.training_objective(batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        trajectory.append({n: float(w) for n, w in model.weighting.weights().items()})
        if step % 2 == 1:
            model.weighting.on_train_epoch_end()
    return trajectory


@pytest.mark.parametrize("method", METHODS)
def test_the_bound_on_s_drives_no_weight(method, monkeypatch):
    """The bound on s raised from 10 to 20: every weight of every step stays bit for bit.

    The bound also shapes s (``bound tanh(raw / bound)``): another bound is another
    parametrisation, so another network after a step. That shaping is held at 10 here, and
    everything else that reads the bound follows it to 20: the constant 0.5 D bound or
    D bound that the loss once added moved the weights by up to tens of percent."""
    first = _weight_trajectory(method)
    monkeypatch.setattr(aleatoric, "LOG_SCALE_BOUND", 20.0)
    monkeypatch.setattr(base, "bound_log_scale", functools.partial(bound_log_scale, bound=10.0))
    second = _weight_trajectory(method)
    assert len(first) == len(second) == 6
    assert second == first
    moved = any(abs(w[t] - first[0][t]) > 1e-4 for w in first for t in w)
    assert moved or method in ("uncertainty", "settled_uncertainty"), "weights never moved"


@pytest.mark.parametrize("method", ["uncertainty", "settled_uncertainty", "uncertainty_pcgrad"])
def test_tasks_with_per_pixel_sigma_keep_weight_one_and_the_others_learn(method):
    trajectory = _weight_trajectory(method, steps=4)
    model = _model(method)
    assert model.weighting.per_pixel_tasks == PER_PIXEL
    for weights in trajectory:
        assert weights["instance"] == weights["depth"] == 1.0
    assert trajectory[-1]["semantic"] != pytest.approx(1.0, abs=1e-4)  # still learned
    assert set(model.weighting.log_variances()) == {"semantic"}
    assert set(model.weighting.sigmas()) == {"semantic"}


def test_uncertainty_weighting_adds_per_pixel_losses_with_weight_one_and_no_s():
    weighting = UncertaintyWeighting(init_log_variance=0.4)
    weighting.set_per_pixel_tasks(["depth"])
    weighting.bind({"semantic": "boltzmann", "depth": "gaussian"})
    assert [name for name, _ in weighting.named_parameters()] == ["log_variance.semantic"]
    semantic = torch.tensor(2.0, requires_grad=True)
    depth = torch.tensor(-3.0, requires_grad=True)  # a plain NLL may be negative
    total = weighting({"semantic": semantic, "depth": depth})
    # boltzmann term exp(-s) L + 0.5 s for semantics; the depth NLL as it is.
    assert float(total.detach()) == pytest.approx(math.exp(-0.4) * 2.0 + 0.2 - 3.0, rel=1e-6)
    total.backward()
    assert float(depth.grad) == 1.0
    assert float(semantic.grad) == pytest.approx(math.exp(-0.4), rel=1e-6)
    # absent depth target: its term goes, nothing else changes
    absent = weighting({"semantic": semantic, "depth": depth}, {"depth": torch.tensor(False)})
    assert float(absent.detach()) == pytest.approx(math.exp(-0.4) * 2.0 + 0.2, rel=1e-6)
    with pytest.raises(ValueError, match=r"init_log_variance names \['depth'\].*per-pixel"):
        named = UncertaintyWeighting(init_log_variance={"depth": 1.0})
        named.set_per_pixel_tasks(["depth"])
        named.bind({"semantic": "boltzmann", "depth": "gaussian"})


def test_a_checkpoint_with_an_old_s_for_a_per_pixel_task_still_loads():
    old = UncertaintyWeighting()
    old.bind({"semantic": "boltzmann", "depth": "gaussian"})
    new = UncertaintyWeighting()
    new.set_per_pixel_tasks(["depth"])
    new.bind({"semantic": "boltzmann", "depth": "gaussian"})
    with torch.no_grad():
        old.log_variance["semantic"].fill_(0.7)
    new.load_state_dict(old.state_dict())  # strict: the depth s is dropped, not an error
    assert float(new.log_variances()["semantic"]) == pytest.approx(0.7)


def test_settled_weights_skip_per_pixel_tasks():
    weighting = SettledUncertaintyWeighting(momentum=0.0)
    weighting.set_per_pixel_tasks(["depth"])
    weighting.bind({"semantic": "boltzmann", "depth": "laplace"})
    weighting({"semantic": torch.tensor(0.25), "depth": torch.tensor(4.0)})
    weights = weighting.weights()
    assert float(weights["semantic"]) == pytest.approx(1 / (2 * 0.25))  # 1 / (2 k L), k = 1
    assert float(weights["depth"]) == 1.0
    assert set(weighting.log_variances()) == {"semantic"}
