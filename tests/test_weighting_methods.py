"""Each weighting method's defining behaviour, against values worked out by hand."""

import math

import pytest
import torch
from torch import nn

from mtlscene.weighting import (
    WEIGHTING_METHODS,
    DWAWeighting,
    EqualWeighting,
    FAMOWeighting,
    GeometricLossWeighting,
    GradNormWeighting,
    IMTLLWeighting,
    MGDAWeighting,
    PCGradWeighting,
    RandomLossWeighting,
    UPGradWeighting,
)
from mtlscene.weighting.dual_cone import ActiveSetProjector

TASKS = {"a": "gaussian", "b": "gaussian"}


def _bound(weighting, tasks=TASKS):
    weighting.bind(tasks)
    return weighting


def _floats(weights):
    return [float(w) for w in weights.values()]


class LinearTasks(nn.Module):
    """A shared parameter theta; task i's loss is g_i . theta, so its gradient is exactly g_i."""

    def __init__(self, gradients):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(len(gradients[0])))
        self.gradients = torch.tensor(gradients)

    def losses(self):
        return {name: g @ self.theta + 1.0 for name, g in zip("ab", self.gradients, strict=True)}


def _aggregated_update(weighting, gradients):
    """theta.grad after one backward of the weighting's objective."""
    model = LinearTasks(gradients)
    heads = {"a": nn.Identity(), "b": nn.Identity()}
    _bound(weighting)(model.losses(), shared=model, heads=heads).backward()
    return model.theta.grad


def test_every_short_name_maps_to_a_weighting_class():
    assert set(WEIGHTING_METHODS) == {
        "uncertainty", "settled_uncertainty", "uw_so", "fixed", "equal", "dwa", "rlw", "famo",
        "gls", "imtl_l", "gradnorm",
        "mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad",
    }  # fmt: skip


def test_equal_weighting_sums_the_losses():
    weighting = _bound(EqualWeighting())
    total = weighting({"a": torch.tensor(2.0), "b": torch.tensor(3.0)})
    assert float(total) == 5.0 and _floats(weighting.weights()) == [1.0, 1.0]


def test_dwa_weights_from_a_loss_history():
    weighting = _bound(DWAWeighting(temperature=2.0))
    assert _floats(weighting.weights()) == [1.0, 1.0]  # uniform before two epochs
    # Epoch means a: 2 -> 1 (halved), b: 1 -> 1 (flat): r = (0.5, 1.0).
    for epoch_losses in ([(2.0, 1.0), (2.0, 1.0)], [(1.5, 1.0), (0.5, 1.0)]):
        for a, b in epoch_losses:
            weighting({"a": torch.tensor(a), "b": torch.tensor(b)})
        weighting.on_train_epoch_end()
    e_a, e_b = math.exp(0.5 / 2), math.exp(1.0 / 2)
    expected = [2 * e_a / (e_a + e_b), 2 * e_b / (e_a + e_b)]  # [0.7551, 1.2449]
    assert _floats(weighting.weights()) == pytest.approx(expected, rel=1e-6)
    total = weighting({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    assert float(total) == pytest.approx(sum(expected))


def test_rlw_weights_sum_to_the_number_of_tasks_and_vary():
    weighting = _bound(
        RandomLossWeighting(seed=3), {"a": "gaussian", "b": "laplace", "c": "boltzmann"}
    )
    draws = []
    for _ in range(5):
        weighting({name: torch.tensor(1.0) for name in "abc"})
        draws.append(_floats(weighting.weights()))
    assert all(sum(d) == pytest.approx(3.0) for d in draws)
    assert all(min(d) > 0 for d in draws)
    assert len({tuple(d) for d in draws}) == 5


def test_gls_is_the_geometric_mean_and_weights_small_losses_up():
    weighting = _bound(GeometricLossWeighting(eps=0.0))
    total = weighting({"a": torch.tensor(4.0), "b": torch.tensor(1.0)})
    assert float(total) == pytest.approx(2.0)  # sqrt(4 * 1)
    assert _floats(weighting.weights()) == pytest.approx([2 / (2 * 4), 2 / (2 * 1)])


def test_imtl_l_gradient_balances_scaled_losses_to_one():
    weighting = _bound(IMTLLWeighting())
    weighting({"a": torch.tensor(4.0), "b": torch.tensor(0.5)}).backward()
    # d/ds (e^s L - s) at s=0 is L - 1.
    assert weighting.log_scale.grad.tolist() == pytest.approx([3.0, -0.5])


def test_famo_weight_update():
    weighting = _bound(FAMOWeighting(lr=0.025, weight_decay=0.0, eps=0.0))
    weighting({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})  # no "before" yet: no update
    assert weighting.logits.tolist() == [0.0, 0.0]
    weighting({"a": torch.tensor(0.5), "b": torch.tensor(1.0)})
    # delta = (log 2, 0); grad = z * (delta - z.delta) = (log2/4, -log2/4); the first Adam step
    # moves each logit by lr against the sign of its gradient.
    assert weighting.logits.tolist() == pytest.approx([-0.025, 0.025], rel=1e-5)
    z = torch.softmax(torch.tensor([-0.025, 0.025]), dim=0)
    losses = torch.tensor([0.5, 1.0])
    expected = (z / losses) / (z / losses).sum()  # c z_i / L_i: a convex combination
    assert _floats(weighting.weights()) == pytest.approx(expected.tolist(), rel=1e-5)


def test_pcgrad_projection_of_two_conflicting_gradients():
    # g1 = (1, 0), g2 = (-1, 1) conflict (g1.g2 = -1):
    # g1' = g1 - (g1.g2 / |g2|^2) g2 = (0.5, 0.5); g2' = g2 - (g2.g1 / |g1|^2) g1 = (0, 1).
    update = _aggregated_update(PCGradWeighting(), [[1.0, 0.0], [-1.0, 1.0]])
    assert update.tolist() == pytest.approx([0.5, 1.5])


def test_mgda_min_norm_weights_for_two_orthogonal_gradients():
    # min over a of |a g1 + (1 - a) g2|^2 = a^2 + 4 (1 - a)^2 with g1 = (1, 0), g2 = (0, 2):
    # a = 4/5, so the weights are (0.8, 0.2) and the update (0.8, 0.4).
    weighting = MGDAWeighting()
    update = _aggregated_update(weighting, [[1.0, 0.0], [0.0, 2.0]])
    assert _floats(weighting.weights()) == pytest.approx([0.8, 0.2], abs=1e-6)
    assert update.tolist() == pytest.approx([0.8, 0.4], abs=1e-6)


def test_jacobian_methods_give_heads_their_own_unweighted_gradient():
    model = LinearTasks([[1.0, 0.0], [0.0, 2.0]])
    heads = {"a": nn.Linear(1, 1, bias=False), "b": nn.Linear(1, 1, bias=False)}
    for head in heads.values():
        nn.init.ones_(head.weight)
    base = model.losses()
    losses = {n: heads[n](base[n].reshape(1, 1)).sum() * 3.0 for n in "ab"}
    _bound(MGDAWeighting())(losses, shared=model, heads=heads).backward()
    # d(3 w L)/dw = 3 L = 3 at theta = 0, whatever MGDA's weights.
    assert [float(heads[n].weight.grad) for n in "ab"] == [3.0, 3.0]


def test_upgrad_without_quadprog_matches_torchjd_documented_weights():
    # TorchJD's documentation: Jacobian [[-4, 1, 1], [6, 1, 1]] -> weights [1.1109, 0.7894].
    jacobian = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    weighting = UPGradWeighting()
    assert weighting.jacobian_weights(jacobian).tolist() == pytest.approx(
        [1.1109, 0.7894], abs=1e-4
    )


def test_active_set_projector_meets_the_kkt_conditions():
    torch.manual_seed(1)
    a = torch.randn(4, 6, dtype=torch.float64)
    gramian, u = a @ a.T, torch.randn(4, dtype=torch.float64)
    v = ActiveSetProjector(norm_eps=0.0, reg_eps=0.0)(u[None], gramian)[0]
    multipliers = gramian @ v
    assert (v >= u - 1e-9).all() and (multipliers >= -1e-9).all()
    assert (multipliers * (v - u)).abs().max() < 1e-9  # complementary slackness


def test_gradnorm_update_direction():
    weighting = _bound(GradNormWeighting(alpha=1.5))
    # First step: loss ratios are 1, so the target is the mean norm 1.5 for both tasks; the
    # task with the larger gradient (a: 2 vs 1) has its weight pushed down:
    # d/dw |w_i n_i - 1.5| = sign(.) n_i = (+2, -1).
    weighting.balance_loss(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0])).backward()
    assert weighting.task_weights.grad.tolist() == pytest.approx([2.0, -1.0])
    # Equal norms but task a trains twice as fast (loss 1 -> 0.5): r = (2/3, 4/3), targets
    # 1 * r^1.5 = (0.544, 1.540): a's weight goes down, b's up.
    weighting.task_weights.grad = None
    weighting.balance_loss(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1.0])).backward()
    assert weighting.task_weights.grad.tolist() == pytest.approx([1.0, -1.0])


def test_gradnorm_renormalises_and_trains_only_weights_through_its_balance_term():
    model = LinearTasks([[1.0, 0.0], [0.0, 2.0]])
    weighting = _bound(GradNormWeighting(layer=""))
    with torch.no_grad():
        weighting.task_weights.copy_(torch.tensor([3.0, 1.0]))
    heads = {"a": nn.Identity(), "b": nn.Identity()}
    total = weighting(model.losses(), shared=model, heads=heads)
    assert weighting.task_weights.tolist() == pytest.approx([1.5, 0.5])  # sums to 2
    assert float(total.detach()) == pytest.approx(1.5 + 0.5)  # the weighted losses at theta = 0
    total.backward()
    assert model.theta.grad.tolist() == pytest.approx([1.5, 1.0])  # 1.5 g1 + 0.5 g2


@pytest.mark.parametrize("method", ["dwa", "famo", "rlw", "gradnorm", "pcgrad"])
def test_state_survives_a_checkpoint(method):
    torch.manual_seed(0)
    model = LinearTasks([[1.0, 0.0], [0.0, 2.0]])
    heads = {"a": nn.Identity(), "b": nn.Identity()}

    def step(weighting, scale):
        losses = {n: loss * scale for n, loss in model.losses().items()}
        extra = {"shared": model, "heads": heads} if weighting.requires_gradients else {}
        weighting(losses, **extra).backward()
        if isinstance(weighting, GradNormWeighting):
            with torch.no_grad():
                weighting.task_weights -= 0.1 * weighting.task_weights.grad
            weighting.task_weights.grad = None
        weighting.on_train_epoch_end()
        return _floats(weighting.weights())

    options = {"layer": ""} if method == "gradnorm" else {}  # theta is the shared layer
    original = _bound(WEIGHTING_METHODS[method](**options))
    for scale in (1.0, 0.7, 0.4):
        step(original, scale)
    restored = _bound(WEIGHTING_METHODS[method](**options))
    restored.load_state_dict(original.state_dict())
    assert step(restored, 0.3) == step(original, 0.3)


def test_jacobian_methods_refuse_gradient_accumulation():
    with pytest.raises(ValueError, match="accumulate_grad_batches=2"):
        _bound(PCGradWeighting()).check_trainer_options(accumulate_grad_batches=2)


@pytest.mark.parametrize("method", ["cagrad", "nash_mtl"])
def test_missing_solver_packages_give_a_clear_error(method):
    pytest.importorskip("torchjd")
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install"):
            WEIGHTING_METHODS[method]()
    else:
        assert WEIGHTING_METHODS[method]() is not None


def test_gls_gradient_is_that_of_the_geometric_mean():
    losses = torch.tensor([4.0, 1.0], requires_grad=True)
    _bound(GeometricLossWeighting(eps=0.0))({"a": losses[0], "b": losses[1]}).backward()
    direct = torch.tensor([4.0, 1.0], requires_grad=True)
    torch.sqrt(direct[0] * direct[1]).backward()
    assert losses.grad.tolist() == pytest.approx(direct.grad.tolist())


@pytest.mark.parametrize("regularizer", ["log", "log1p"])
def test_vectorised_uncertainty_loss_equals_the_sum_of_task_terms(regularizer):
    from mtlscene.weighting import UncertaintyWeighting

    weighting = UncertaintyWeighting(
        init_log_variance={"g": 0.3, "l": -0.4, "b": 2.5},
        clamp=(-1.0, 2.0),
        regularizer=regularizer,
    )
    weighting.bind({"g": "gaussian", "l": "laplace", "b": "boltzmann"})
    losses = {"g": torch.tensor(1.5), "l": torch.tensor(0.2), "b": torch.tensor(3.0)}
    expected = sum(float(weighting.task_term(name, loss)) for name, loss in losses.items())
    assert float(weighting(losses)) == pytest.approx(expected, rel=1e-6)
