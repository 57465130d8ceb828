"""Each weighting method's defining behaviour, against values worked out by hand."""

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mtlscene.weighting import (
    WEIGHTING_METHODS,
    AlignedMTLWeighting,
    CAGradWeighting,
    DWAWeighting,
    EqualWeighting,
    FAMOWeighting,
    GeometricLossWeighting,
    GradNormWeighting,
    IMTLGWeighting,
    IMTLLWeighting,
    MGDAWeighting,
    NashMTLWeighting,
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
    """A shared parameter theta; task i's loss is g_i . theta, so its gradient is exactly g_i.

    The tasks are named a, b, c... (one per row of ``gradients``).
    """

    def __init__(self, gradients):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(len(gradients[0])))
        self.gradients = torch.tensor(gradients)
        self.names = "abcdef"[: len(gradients)]

    def losses(self):
        pairs = zip(self.names, self.gradients, strict=True)
        return {name: g @ self.theta + 1.0 for name, g in pairs}


def _aggregated_update(weighting, gradients):
    """theta.grad after one backward of the weighting's objective."""
    model = LinearTasks(gradients)
    heads = {name: nn.Identity() for name in model.names}
    _bound(weighting, dict.fromkeys(model.names, "gaussian"))
    weighting(model.losses(), shared=model, heads=heads).backward()
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


@pytest.mark.parametrize(
    ("method", "solver"), [("cagrad", "CAGradWeighting"), ("nash_mtl", "NashMTL")]
)
def test_missing_solver_packages_give_a_clear_error(method, solver, monkeypatch):
    # None in sys.modules makes the package unimportable, as if it were not installed.
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    extra = {"cagrad": "cagrad", "nash_mtl": "nash_mtl"}[method]
    with pytest.raises(ImportError) as error:
        WEIGHTING_METHODS[method]()  # at construction, not at the first training step
    message = str(error.value)
    assert message.startswith(f"the {solver} method needs TorchJD's optional solver packages")
    assert "'cvxpy'" in message and f'pip install "torchjd[{extra}]"' in message


# The four methods below are held against their papers' equations, computed here with numpy
# from the same small Jacobian J (rows: the task gradients g_i). Gradients that conflict
# (g_1 . g_2 < 0) so that no method reduces to the mean.
CONFLICTING = [[1.0, 0.5, 0.0], [-1.0, 1.0, 0.0], [0.0, -0.5, 1.0]]


def _cagrad_reference(jacobian: np.ndarray, c: float) -> np.ndarray:
    """CAGrad's weights from its dual, solved by a search over the simplex (3 tasks).

    Liu et al. (NeurIPS 2021), Sec. 3 and Algorithm 1: w* = argmin over the simplex of
    F(w) = g_w . g_0 + sqrt(phi) |g_w|, with g_w = J^T w, g_0 the mean gradient and
    phi = c^2 |g_0|^2; the update is d = g_0 + sqrt(phi) / |g_w*| g_w*.
    """
    g0 = jacobian.mean(axis=0)
    root_phi = c * np.linalg.norm(g0)

    def best(center: np.ndarray, radius: float, step: float) -> np.ndarray:
        offsets = np.arange(-radius, radius + step / 2, step)
        a, b = np.meshgrid(center[0] + offsets, center[1] + offsets, indexing="ij")
        w = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
        w = w[(w >= -1e-12).all(axis=1)]
        g_w = w @ jacobian
        dual = g_w @ g0 + root_phi * np.linalg.norm(g_w, axis=1)
        return w[dual.argmin()]

    coarse = best(np.array([0.5, 0.5]), 0.5, 1 / 200)  # the whole simplex
    w_star = best(coarse, 0.01, 1e-4)  # then around its best point
    g_w = w_star @ jacobian
    return np.full(len(jacobian), 1 / len(jacobian)) + root_phi / np.linalg.norm(g_w) * w_star


@pytest.mark.parametrize("c", [0.4, 0.8])
def test_cagrad_weights_solve_its_dual(c):
    pytest.importorskip("cvxpy")
    jacobian = np.array(CONFLICTING)
    weighting = CAGradWeighting(c=c)
    update = _aggregated_update(weighting, CONFLICTING).double().numpy()
    expected = _cagrad_reference(jacobian, c)
    assert _floats(weighting.weights()) == pytest.approx(expected.tolist(), abs=2e-3)
    np.testing.assert_allclose(update, expected @ jacobian, atol=5e-3)
    # The primal's constraint is active: d sits on the ball |d - g_0| = c |g_0|.
    g0 = jacobian.mean(axis=0)
    assert np.linalg.norm(update - g0) == pytest.approx(c * np.linalg.norm(g0), rel=1e-3)


def test_nash_mtl_weights_solve_the_bargaining_equation():
    pytest.importorskip("cvxpy")
    jacobian = np.array(CONFLICTING)
    gramian = jacobian @ jacobian.T
    # Navon et al. (ICML 2022), Sec. 3.1: the Nash bargaining solution alpha > 0 solves
    # G^T G alpha = 1 / alpha (G: the gradients as columns, so G^T G = J J^T here).
    weighting = NashMTLWeighting(max_norm=0.0)  # no clipping: alpha itself
    update = _aggregated_update(weighting, CONFLICTING).double().numpy()
    alpha = np.array(_floats(weighting.weights()))
    assert (alpha > 0).all()
    np.testing.assert_allclose(gramian @ alpha, 1 / alpha, rtol=1e-3)
    np.testing.assert_allclose(update, alpha @ jacobian, rtol=1e-5)
    # By default the update is rescaled to norm max_norm = 1 when longer (Algorithm 1's
    # step cap); with 10 x the gradients it is: |J^T alpha| = sqrt(3 |J J^T|) > 1 unscaled.
    clipped = _aggregated_update(NashMTLWeighting(), (10 * jacobian).tolist()).double().numpy()
    assert np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-5)
    direction = update / np.linalg.norm(update)  # the same direction: only the length is capped
    np.testing.assert_allclose(clipped / np.linalg.norm(clipped), direction, rtol=1e-5)


def test_imtl_g_weights_match_the_closed_form_and_equalise_projections():
    jacobian = np.array(CONFLICTING)
    weighting = IMTLGWeighting()
    update = _aggregated_update(weighting, CONFLICTING).double().numpy()
    # Liu et al. (ICLR 2021), IMTL-G's closed form: with unit gradients u_t = g_t / |g_t|,
    # D = [g_1 - g_t] and U = [u_1 - u_t] (t = 2..T, as rows),
    # alpha_{2:T} = g_1 U^T (D U^T)^{-1} and alpha_1 = 1 - sum(alpha_{2:T}).
    units = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True)
    d, u = jacobian[0] - jacobian[1:], units[0] - units[1:]
    rest = jacobian[0] @ u.T @ np.linalg.inv(d @ u.T)
    expected = np.concatenate([[1 - rest.sum()], rest])
    assert _floats(weighting.weights()) == pytest.approx(expected.tolist(), abs=1e-5)
    # Its defining property: the update projects equally on every task's gradient direction.
    projections = units @ update
    np.testing.assert_allclose(projections, projections.mean(), rtol=1e-5)
    assert projections.mean() > 0


def test_aligned_mtl_update_has_the_smallest_singular_value_in_every_direction():
    jacobian = np.array(CONFLICTING)
    weighting = AlignedMTLWeighting()
    update = _aggregated_update(weighting, CONFLICTING).double().numpy()
    # Senushkin et al. (CVPR 2023), Algorithm 1: eigen-decompose G^T G = V diag(lambda) V^T
    # and take B = sqrt(lambda_min) V diag(lambda)^{-1/2} V^T; the update is G B w with
    # w = 1/T. Here from the SVD J = P S Q^T (lambda = S^2, V = P): the aligned Jacobian
    # B J = s_min P Q^T has every singular value s_min (condition number 1).
    p, s, q_t = np.linalg.svd(jacobian, full_matrices=False)
    mean = np.full(len(jacobian), 1 / len(jacobian))
    balance = s.min() * p @ np.diag(1 / s) @ p.T
    assert _floats(weighting.weights()) == pytest.approx((balance @ mean).tolist(), abs=1e-5)
    np.testing.assert_allclose(update, mean @ (s.min() * p @ q_t), atol=1e-5)


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
