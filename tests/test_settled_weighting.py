"""Settled uncertainty weights (w* = 1/(2kL)), UW-SO and a loss weighting composed with a
gradient method, against values worked out by hand."""

import math

import pytest
import torch
from torch import nn

from mtlscene.weighting import (
    ComposedWeighting,
    PCGradWeighting,
    SettledUncertaintyWeighting,
    SoftOptimalUncertaintyWeighting,
    UncertaintyWeighting,
    UPGradWeighting,
)

LIKELIHOODS = {"semantic": "boltzmann", "instance": "laplace", "depth": "gaussian"}


def _losses(**values):
    return {name: torch.tensor(value) for name, value in values.items()}


def _floats(weights):
    return [float(w) for w in weights.values()]


def test_settled_weights_are_one_over_2kL_per_likelihood():
    weighting = SettledUncertaintyWeighting(momentum=0.0)
    weighting.bind(LIKELIHOODS)
    total = weighting(_losses(semantic=2.0, instance=4.0, depth=0.5))
    # Boltzmann k=1: 1/(2*2); Laplace k=1/2: 1/4; Gaussian k=1: 1/(2*0.5).
    assert _floats(weighting.weights()) == pytest.approx([0.25, 0.25, 1.0])
    assert float(total) == pytest.approx(0.25 * 2 + 0.25 * 4 + 1.0 * 0.5)
    # The weight is the one learned uncertainty weighting settles at: its s minimises
    # c exp(-k s) L + s/2, and the reported s is that minimiser.
    s = weighting.log_variances()
    for name, loss in (("semantic", 2.0), ("instance", 4.0), ("depth", 0.5)):
        learned = UncertaintyWeighting(init_log_variance=float(s[name]))
        learned.bind({name: LIKELIHOODS[name]})
        loss_t = torch.tensor(loss)
        learned({name: loss_t}).backward()
        assert abs(float(learned.log_variance[name].grad)) < 1e-6  # d term / ds = 0


def test_settled_weights_follow_a_running_average_and_skip_absent_tasks():
    weighting = SettledUncertaintyWeighting(momentum=0.5)
    weighting.bind({"a": "gaussian", "b": "gaussian"})
    weighting(_losses(a=1.0, b=2.0))  # the first batch sets the averages
    weighting(_losses(a=3.0, b=0.0), present={"a": torch.tensor(True), "b": torch.tensor(False)})
    # a: 0.5 * 1 + 0.5 * 3 = 2 -> 1/4; b unchanged at 2 -> 1/4, and adds nothing.
    assert _floats(weighting.weights()) == pytest.approx([0.25, 0.25])
    weighting(_losses(a=2.0, b=4.0))
    assert _floats(weighting.weights()) == pytest.approx([1 / 4, 1 / 6])
    # The averages are state: a restored copy continues with the same weights.
    restored = SettledUncertaintyWeighting(momentum=0.5)
    restored.bind({"a": "gaussian", "b": "gaussian"})
    restored.load_state_dict(weighting.state_dict())
    assert _floats(restored.weights()) == _floats(weighting.weights())


def test_settled_weights_are_detached_and_bad_options_are_named():
    weighting = SettledUncertaintyWeighting(momentum=0.0)
    weighting.bind({"a": "gaussian"})
    loss = torch.tensor(2.0, requires_grad=True)
    weighting({"a": loss}).backward()
    assert float(loss.grad) == pytest.approx(0.25)  # w* = 1/4, no gradient through w*
    with pytest.raises(ValueError, match="momentum"):
        SettledUncertaintyWeighting(momentum=1.0)


def test_uw_so_is_a_softmax_of_inverse_losses_with_temperature():
    weighting = SoftOptimalUncertaintyWeighting(temperature=0.5)
    weighting.bind(LIKELIHOODS)
    total = weighting(_losses(semantic=2.0, instance=4.0, depth=0.5))
    logits = [1 / 2.0 / 0.5, 1 / 4.0 / 0.5, 1 / 0.5 / 0.5]
    norm = sum(math.exp(v) for v in logits)
    expected = [math.exp(v) / norm for v in logits]
    assert _floats(weighting.weights()) == pytest.approx(expected, rel=1e-6)
    assert float(total) == pytest.approx(
        sum(w * x for w, x in zip(expected, [2, 4, 0.5], strict=True))
    )
    # An absent task takes no weight (its zero loss would otherwise take it all).
    weighting(
        _losses(semantic=2.0, instance=0.0, depth=0.5),
        present={"instance": torch.tensor(False)},
    )
    e_s, e_d = math.exp(1.0), math.exp(4.0)
    assert _floats(weighting.weights()) == pytest.approx(
        [e_s / (e_s + e_d), 0.0, e_d / (e_s + e_d)], rel=1e-6
    )
    with pytest.raises(ValueError, match="temperature"):
        SoftOptimalUncertaintyWeighting(temperature=0.0)


class LinearTasks(nn.Module):
    """Shared theta and one head parameter per task; loss_i = g_i . theta + h_i^2 + 1."""

    def __init__(self, gradients):
        super().__init__()
        self.shared = nn.ParameterDict({"theta": nn.Parameter(torch.zeros(len(gradients[0])))})
        self.gradients = torch.tensor(gradients)
        self.heads = nn.ModuleDict({name: nn.Linear(1, 1, bias=False) for name in ("a", "b")})
        for head in self.heads.values():
            nn.init.constant_(head.weight, 0.5)

    def losses(self):
        return {
            name: g @ self.shared["theta"] + self.heads[name].weight.sum() ** 2 + 1.0
            for name, g in zip("ab", self.gradients, strict=True)
        }


def test_uncertainty_then_pcgrad_equals_the_two_applied_by_hand():
    gradients = [[1.0, 0.0], [-1.0, 1.0]]  # conflicting: g_a . g_b = -1
    init = {"a": 0.3, "b": -0.2}
    model = LinearTasks(gradients)
    composed = ComposedWeighting(UncertaintyWeighting(init_log_variance=init), PCGradWeighting())
    composed.bind({"a": "gaussian", "b": "gaussian"})
    total = composed(model.losses(), shared=model.shared, heads=model.heads)
    total.backward()

    # By hand: lambda_i = 0.5 exp(-s_i); PCGrad on lambda_i g_i (two tasks: each projected
    # off the other when they conflict, then summed).
    lam = torch.tensor([0.5 * math.exp(-0.3), 0.5 * math.exp(0.2)])
    ga, gb = lam[0] * torch.tensor(gradients[0]), lam[1] * torch.tensor(gradients[1])
    pa = ga - (ga @ gb) / (gb @ gb) * gb
    pb = gb - (gb @ ga) / (ga @ ga) * ga
    assert model.shared["theta"].grad.tolist() == pytest.approx((pa + pb).tolist(), rel=1e-5)
    # Each head gets its own weighted gradient: lambda_i * d(h^2)/dh = lambda_i * 2 * 0.5.
    for i, name in enumerate("ab"):
        assert float(model.heads[name].weight.grad) == pytest.approx(float(lam[i]), rel=1e-5)
    # s gets exactly the gradient uncertainty weighting alone gives it.
    alone = UncertaintyWeighting(init_log_variance=init)
    alone.bind({"a": "gaussian", "b": "gaussian"})
    alone({n: loss.detach() for n, loss in LinearTasks(gradients).losses().items()}).backward()
    for name in "ab":
        assert float(composed.loss_weighting.log_variance[name].grad) == pytest.approx(
            float(alone.log_variance[name].grad)
        )
    assert float(total.detach()) == pytest.approx(
        float(alone({n: torch.tensor(1.25) for n in "ab"}).detach())
    )
    # The reported weights and sigmas are uncertainty weighting's; PCGrad's are apart.
    assert _floats(composed.weights()) == pytest.approx(lam.tolist(), rel=1e-6)
    assert set(composed.sigmas()) == {"a", "b"}
    assert _floats(composed.aggregator_weights()) == pytest.approx([2.6487, 1.3033], rel=1e-3)


def test_composition_with_upgrad_and_bad_parts_are_refused():
    # Orthogonal gradients: UPGrad's projections leave them as they are and it averages
    # them; uncertainty weighting at s = 0 scales each by 0.5 first: (0.25, 0.25).
    model = LinearTasks([[1.0, 0.0], [0.0, 1.0]])
    composed = ComposedWeighting(UncertaintyWeighting(), UPGradWeighting())
    composed.bind({"a": "gaussian", "b": "gaussian"})
    composed(model.losses(), shared=model.shared, heads=model.heads).backward()
    assert model.shared["theta"].grad.tolist() == pytest.approx([0.25, 0.25], rel=1e-4)
    with pytest.raises(ValueError, match="gradient_method"):
        ComposedWeighting(UncertaintyWeighting(), UncertaintyWeighting())
    with pytest.raises(ValueError, match="loss_weighting"):
        ComposedWeighting(PCGradWeighting(), PCGradWeighting())
    exact = ComposedWeighting(UncertaintyWeighting(boltzmann="exact"), PCGradWeighting())
    with pytest.raises(ValueError, match="boltzmann"):
        exact.bind({"a": "boltzmann"})


def test_composed_preset_fits_logs_sigmas_and_rebuilds_from_its_checkpoint(tmp_path):
    from pathlib import Path

    from mtlscene.cli.main import build_cli
    from mtlscene.trainers.multitask import MultiTaskModule

    root = Path(__file__).parents[1]
    cli = build_cli(
        [
            "fit",
            "--config",
            str(root / "tests" / "conf" / "tiny.yaml"),
            "--config",
            str(root / "configs" / "weighting" / "uncertainty_pcgrad.yaml"),
            "--trainer.limit_val_batches=0",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    weighting = cli.model.weighting
    assert isinstance(weighting.gradient_method, PCGradWeighting)
    metrics = cli.trainer.callback_metrics
    for task in cli.model.heads:
        assert torch.isfinite(metrics[f"uncertainty/sigma/{task}"])
        # s learned: it moved away from its initial 0.
        assert float(weighting.loss_weighting.log_variance[task].detach()) != 0.0
    checkpoint = cli.trainer.checkpoint_callback.last_model_path
    restored = MultiTaskModule.load_from_checkpoint(checkpoint)
    assert isinstance(restored.weighting, ComposedWeighting)
    assert isinstance(restored.weighting.loss_weighting, UncertaintyWeighting)
    for task in cli.model.heads:
        assert torch.equal(
            restored.weighting.loss_weighting.log_variance[task],
            weighting.loss_weighting.log_variance[task].cpu(),
        )
