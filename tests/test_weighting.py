import math

import pytest
import torch

from mtlscene.tasks import Likelihood
from mtlscene.weighting import FixedWeighting, UncertaintyWeighting


def _optimum_s(likelihood: Likelihood, loss_value: float) -> float:
    weighting = UncertaintyWeighting()
    weighting.bind({"task": likelihood})
    optimizer = torch.optim.LBFGS(weighting.parameters(), lr=0.5, max_iter=200)
    loss = torch.tensor(loss_value)

    def closure():
        optimizer.zero_grad()
        total = weighting({"task": loss})
        total.backward()
        return total

    optimizer.step(closure)
    return weighting.log_variances()["task"]


@pytest.mark.parametrize(
    ("likelihood", "expected"),
    [
        (Likelihood.GAUSSIAN, lambda L: math.log(L)),
        (Likelihood.BOLTZMANN, lambda L: math.log(2 * L)),
        (Likelihood.LAPLACE, lambda L: 2 * math.log(L)),
    ],
)
@pytest.mark.parametrize("loss_value", [0.3, 2.5])
def test_closed_form_optimum_of_each_likelihood(likelihood, expected, loss_value):
    assert _optimum_s(likelihood, loss_value) == pytest.approx(expected(loss_value), abs=1e-3)


def test_terms_match_the_paper_table():
    weighting = UncertaintyWeighting(init_log_variance=0.7)
    weighting.bind({"g": "gaussian", "l": "laplace", "b": "boltzmann"})
    L, s = torch.tensor(3.0), 0.7
    assert float(weighting.task_term("g", L)) == pytest.approx(0.5 * math.exp(-s) * 3 + 0.5 * s)
    assert float(weighting.task_term("l", L)) == pytest.approx(math.exp(-s / 2) * 3 + 0.5 * s)
    assert float(weighting.task_term("b", L)) == pytest.approx(math.exp(-s) * 3 + 0.5 * s)
    assert weighting.weights() == pytest.approx(
        {"g": 0.5 * math.exp(-s), "l": math.exp(-s / 2), "b": math.exp(-s)}
    )
    assert weighting.sigmas()["g"] == pytest.approx(math.exp(s / 2))


def test_toy_regression_recovers_noise_sigmas():
    """Two outputs with noise sigma 10 and 1: the learned sigmas land within 10%."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 4, generator=generator)
    true_w = torch.randn(4, 2, generator=generator)
    noise = torch.randn(4096, 2, generator=generator) * torch.tensor([10.0, 1.0])
    y = x @ true_w + noise
    model = torch.nn.Linear(4, 2)
    weighting = UncertaintyWeighting()
    weighting.bind({"noisy": "gaussian", "clean": "gaussian"})
    optimizer = torch.optim.Adam(
        [{"params": model.parameters()}, {"params": weighting.parameters(), "lr": 0.05}],
        lr=0.05,
    )
    for _ in range(1500):
        optimizer.zero_grad()
        squared = (model(x) - y) ** 2
        # Gaussian NLL with mean squared error: the optimum sigma^2 is the noise variance.
        total = weighting({"noisy": squared[:, 0].mean(), "clean": squared[:, 1].mean()})
        total.backward()
        optimizer.step()
    sigmas = weighting.sigmas()
    assert sigmas["noisy"] == pytest.approx(10.0, rel=0.1)
    assert sigmas["clean"] == pytest.approx(1.0, rel=0.1)
    # The noisy task ends with the smaller weight.
    assert weighting.weights()["noisy"] < weighting.weights()["clean"] / 50


def test_log1p_regularizer_keeps_total_non_negative_and_clamp_bounds_s():
    weighting = UncertaintyWeighting(init_log_variance=-8.0, regularizer="log1p")
    weighting.bind({"a": "gaussian"})
    assert float(weighting({"a": torch.tensor(0.0)})) >= 0.0
    plain = UncertaintyWeighting(init_log_variance=-8.0)
    plain.bind({"a": "gaussian"})
    assert float(plain({"a": torch.tensor(0.0)})) < 0.0  # the paper's form can go negative
    clamped = UncertaintyWeighting(init_log_variance=-8.0, clamp=(-2.0, 5.0))
    clamped.bind({"a": "gaussian"})
    assert clamped.log_variances()["a"] == -2.0


def test_weighting_runs_in_float32_under_autocast():
    weighting = UncertaintyWeighting(init_log_variance={"a": 0.3})
    weighting.bind({"a": "boltzmann"})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.tensor(1.2345678, dtype=torch.bfloat16) * 1.0
        total = weighting({"a": loss})
    assert total.dtype == torch.float32


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="regularizer"):
        UncertaintyWeighting(regularizer="log2")
    with pytest.raises(ValueError, match="likelihood"):
        UncertaintyWeighting().bind({"a": "poisson"})
    fixed = FixedWeighting({"semantic": 1.0})
    with pytest.raises(ValueError, match="missing \\['depth'\\]"):
        fixed.bind({"semantic": "boltzmann", "depth": "gaussian"})
    with pytest.raises(ValueError, match=">= 0"):
        FixedWeighting({"semantic": -1.0})


def test_fixed_weighting_sums_and_switches_tasks_off():
    fixed = FixedWeighting({"semantic": 0.89, "instance": 0.0, "depth": 0.1})
    fixed.bind({"semantic": "boltzmann", "instance": "gaussian", "depth": "gaussian"})
    assert not fixed.is_active("instance") and fixed.is_active("depth")
    total = fixed({"semantic": torch.tensor(2.0), "depth": torch.tensor(3.0)})
    assert float(total) == pytest.approx(0.89 * 2 + 0.1 * 3)
    assert fixed.weights() == {"semantic": 0.89, "depth": 0.1}
    # The equivalent sigma turns back into the same weight through the likelihood.
    sigma = fixed.sigmas()["depth"]
    assert 0.5 / sigma**2 == pytest.approx(0.1)
    assert list(fixed.parameters()) == []


def test_clamped_s_gets_the_gradient_that_points_back_inside():
    clamped = UncertaintyWeighting(init_log_variance=-8.0, clamp=(-2.0, 5.0))
    clamped.bind({"a": "gaussian"})
    s = clamped.log_variance["a"]
    # L = 10: the optimum s = log 10 lies inside, so descent must raise s.
    clamped({"a": torch.tensor(10.0)}).backward()
    assert float(s.grad) == pytest.approx(-0.5 * math.exp(2.0) * 10 + 0.5)
    # L = 1e-4: the optimum lies below the bound; a push further out is dropped.
    s.grad = None
    clamped({"a": torch.tensor(1e-4)}).backward()
    assert float(s.grad) == 0.0
    # Plain SGD brings an overshooting s back inside the bounds.
    optimizer = torch.optim.SGD(clamped.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        clamped({"a": torch.tensor(10.0)}).backward()
        optimizer.step()
    assert float(s) > -2.0


def test_init_log_variance_naming_an_unknown_task_is_an_error():
    weighting = UncertaintyWeighting(init_log_variance={"semantic": 0.0, "depht": 0.5})
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['depht'\].*\['depth', 'semantic'\]"):
        weighting.bind({"semantic": "boltzmann", "depth": "gaussian"})


def test_absent_task_adds_neither_loss_nor_regulariser():
    weighting = UncertaintyWeighting(init_log_variance=-1.0)
    weighting.bind({"semantic": "boltzmann", "instance": "gaussian"})
    losses = {"semantic": torch.tensor(2.0), "instance": torch.tensor(0.0)}
    total = weighting(losses, {"instance": torch.tensor(False)})
    assert float(total) == pytest.approx(float(weighting.task_term("semantic", losses["semantic"])))
    total.backward()
    assert float(weighting.log_variance["instance"].grad) == 0.0
    assert float(weighting.log_variance["semantic"].grad) != 0.0
    fixed = FixedWeighting({"semantic": 1.0, "instance": 0.5})
    fixed.bind({"semantic": "boltzmann", "instance": "gaussian"})
    absent = fixed(
        {"semantic": torch.tensor(2.0), "instance": torch.tensor(3.0)},
        {"instance": torch.tensor(False)},
    )
    assert float(absent) == pytest.approx(2.0)


def test_batch_without_instance_pixels_leaves_the_instance_sigma_alone():
    """A hand-made batch with no instance pixel: the instance term is skipped entirely."""
    from mtlscene.models import DeepLabEncoder
    from mtlscene.trainers import MultiTaskModule

    model = MultiTaskModule(
        backbone=DeepLabEncoder("resnet18", output_stride=16, aspp_channels=8),
        tasks={
            name: {"hidden_channels": 4, "num_layers": 1}
            for name in ("semantic", "instance", "depth")
        },
    )
    batch = {
        "image": torch.rand(2, 3, 32, 64),
        "semantic": torch.zeros(2, 32, 64, dtype=torch.long),  # all road: no things
        "instance_offset": torch.zeros(2, 2, 32, 64),
        "instance_mask": torch.zeros(2, 32, 64, dtype=torch.bool),
        "disparity": torch.full((2, 32, 64), 4.0),
        "disparity_mask": torch.ones(2, 32, 64, dtype=torch.bool),
    }
    model.training_step(batch, 0).backward()
    grads = {name: float(p.grad) for name, p in model.weighting.log_variance.items()}
    assert grads["instance"] == 0.0  # before: +0.5 from the regulariser alone
    assert grads["semantic"] != 0.0 and grads["depth"] != 0.0
    batch["instance_mask"][0, :4, :4] = True
    model.zero_grad()
    model.training_step(batch, 0).backward()
    assert float(model.weighting.log_variance["instance"].grad) != 0.0


def test_exact_boltzmann_term_is_the_cross_entropy_of_logits_scaled_by_one_over_sigma2():
    """Paper Eq. 8: -log softmax(f / sigma^2); Eq. 10 approximates it, equal at sigma = 1."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator) * 3
    labels = torch.randint(0, 5, (6,), generator=generator)
    raw = torch.nn.functional.cross_entropy(logits, labels)
    for s in (0.0, 0.8, -0.5):
        exact = UncertaintyWeighting(init_log_variance=s, boltzmann="exact")
        exact.bind({"semantic": "boltzmann", "depth": "laplace"})
        scale = exact.prediction_scales()
        assert set(scale) == {"semantic"} and float(scale["semantic"]) == pytest.approx(
            math.exp(-s)
        )
        scaled = torch.nn.functional.cross_entropy(logits * scale["semantic"], labels)
        total = exact({"semantic": scaled, "depth": torch.tensor(2.0)})
        depth_term = math.exp(-s / 2) * 2.0 + 0.5 * s  # other likelihoods are unchanged
        assert float(total) == pytest.approx(float(scaled) + depth_term, rel=1e-6)
        # The weight reported is still exp(-s): the factor on the logits.
        assert float(exact.weights()["semantic"]) == pytest.approx(math.exp(-s))
    approximate = UncertaintyWeighting(init_log_variance=0.0)
    approximate.bind({"semantic": "boltzmann"})
    assert approximate.prediction_scales() == {}
    assert float(approximate({"semantic": raw})) == pytest.approx(float(raw))  # sigma = 1


def test_exact_boltzmann_s_gets_its_gradient_through_the_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 1])
    weighting = UncertaintyWeighting(init_log_variance=0.3, boltzmann="exact")
    weighting.bind({"semantic": "boltzmann"})
    scaled = logits * weighting.prediction_scales()["semantic"]
    weighting({"semantic": torch.nn.functional.cross_entropy(scaled, labels)}).backward()
    s = torch.tensor(0.3, requires_grad=True)
    torch.nn.functional.cross_entropy(logits * torch.exp(-s), labels).backward()
    assert float(weighting.log_variance["semantic"].grad) == pytest.approx(float(s.grad))
    assert float(s.grad) != 0.0


def test_boltzmann_form_must_be_named_right():
    with pytest.raises(ValueError, match=r"boltzmann must be one of \('approximate', 'exact'\)"):
        UncertaintyWeighting(boltzmann="exakt")
