"""Per-pixel uncertainty: closed-form optima of the NLLs, bounds, the semantic MC loss, and the
calibration metrics (ECE, AUSE, coverage) against hand-computed values."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from mtlscene.metrics.aleatoric import (
    AleatoricRegressionMetrics,
    SemanticCalibration,
    sparsification_area,
    sparsification_curve,
)
from mtlscene.uncertainty.aleatoric import (
    LOG_SCALE_BOUND,
    PixelLikelihood,
    bound_log_scale,
    mc_cross_entropy,
    nominal_coverage,
    optimal_log_scale,
    pixel_nll,
)

GAUSSIAN, LAPLACE = PixelLikelihood.GAUSSIAN, PixelLikelihood.LAPLACE
GRID = torch.linspace(-8, 8, 32001)  # s step 5e-4


def _argmin_s(residual: torch.Tensor, likelihood: PixelLikelihood) -> float:
    """The s minimising the per-pixel NLL of one pixel's residual components, by grid (the
    float32 NLL is flat to ~1e-7 within 1e-3 of the minimum: compare at 3e-3)."""
    r = residual.reshape(1, -1, 1, 1).expand(GRID.numel(), -1, 1, 1)
    values = pixel_nll(r, GRID.reshape(-1, 1, 1, 1), likelihood)
    return float(GRID[values.flatten().argmin()])


def _slope_at(residual: torch.Tensor, s: float, likelihood: PixelLikelihood) -> float:
    """d NLL / d s at s (0 at the minimum)."""
    s_tensor = torch.tensor([[[s]]], requires_grad=True)
    pixel_nll(residual.reshape(1, -1, 1, 1), s_tensor, likelihood).sum().backward()
    return float(s_tensor.grad)


@pytest.mark.parametrize("r", [0.05, 0.7, -1.3, 4.0])
def test_gaussian_term_is_minimised_at_log_r_squared(r):
    s_star = _argmin_s(torch.tensor([r]), GAUSSIAN)
    assert s_star == pytest.approx(math.log(r * r), abs=3e-3)
    assert _slope_at(torch.tensor([r]), math.log(r * r), GAUSSIAN) == pytest.approx(0, abs=1e-6)
    # and the documented value itself: 0.5 exp(-s) r^2 + 0.5 s at s* is 0.5 (1 + log r^2)
    value = pixel_nll(torch.tensor([[[[r]]]]), torch.tensor([[[math.log(r * r)]]]), GAUSSIAN)
    assert float(value) == pytest.approx(0.5 * (1 + math.log(r * r)), rel=1e-5)


@pytest.mark.parametrize("r", [0.05, 0.7, -1.3, 4.0])
def test_laplace_term_is_minimised_at_log_abs_r(r):
    s_star = _argmin_s(torch.tensor([r]), LAPLACE)
    assert s_star == pytest.approx(math.log(abs(r)), abs=3e-3)
    assert _slope_at(torch.tensor([r]), math.log(abs(r)), LAPLACE) == pytest.approx(0, abs=1e-6)
    value = pixel_nll(torch.tensor([[[[r]]]]), torch.tensor([[[math.log(abs(r))]]]), LAPLACE)
    assert float(value) == pytest.approx(1 + math.log(abs(r)), rel=1e-5)


def test_two_components_sharing_one_s_count_twice_in_the_regulariser():
    # The instance head's (dy, dx): s* = log(sum r^2 / 2) and log(sum |r| / 2).
    residual = torch.tensor([0.6, -2.0])
    assert _argmin_s(residual, GAUSSIAN) == pytest.approx(math.log((0.36 + 4.0) / 2), abs=3e-3)
    assert _argmin_s(residual, LAPLACE) == pytest.approx(math.log(2.6 / 2), abs=3e-3)
    both = residual.reshape(1, 2, 1, 1)
    for likelihood in (GAUSSIAN, LAPLACE):
        s_star = float(optimal_log_scale(both, likelihood))
        assert _slope_at(residual, s_star, likelihood) == pytest.approx(0, abs=1e-6)


def test_log_scale_is_soft_bounded_with_a_gradient_and_float32_under_autocast():
    raw = torch.tensor([-1e4, -30.0, -0.01, 0.0, 0.5, 30.0, 1e4], requires_grad=True)
    s = bound_log_scale(raw)
    assert s.abs().max() <= LOG_SCALE_BOUND
    assert float(s[3]) == 0.0 and float(s[4].detach()) == pytest.approx(0.5, abs=1e-3)  # ~identity
    s[5].backward()
    assert float(raw.grad[5]) > 0  # an overshooting pixel is still pulled back
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = torch.full((1, 1, 2, 2), 3.0, dtype=torch.bfloat16)
        assert bound_log_scale(half).dtype == torch.float32
        assert pixel_nll(half, half[:, 0], LAPLACE).dtype == torch.float32
        # exp(-s) at the bound stays finite in float32 for a huge residual
        big = torch.full((1, 1, 2, 2), 1e15, dtype=torch.float32)
        assert torch.isfinite(pixel_nll(big, torch.full((1, 2, 2), -10.0), GAUSSIAN)).all()


def test_semantic_mc_loss_reduces_to_cross_entropy_without_noise_and_learns_sigma():
    torch.manual_seed(0)
    logits = torch.tensor([4.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    wrong, right = torch.tensor([[[1]]]), torch.tensor([[[0]]])
    tiny_noise = torch.full((1, 1, 1, 1), -LOG_SCALE_BOUND)
    plain = torch.nn.functional.cross_entropy(logits, wrong)
    assert float(mc_cross_entropy(logits, tiny_noise, wrong, 10, 255)) == pytest.approx(
        float(plain), abs=1e-2
    )
    # More noise lowers the loss of a confidently wrong pixel and raises a right one's.
    noisy = torch.full((1, 1, 1, 1), 2.0)
    samples = 20000
    assert mc_cross_entropy(logits, noisy, wrong, samples, 255) < plain
    right_plain = torch.nn.functional.cross_entropy(logits, right)
    assert mc_cross_entropy(logits, noisy, right, samples, 255) > right_plain
    # All-ignored pixels: 0, with a gradient.
    s = torch.zeros(1, 1, 1, 1, requires_grad=True)
    loss = mc_cross_entropy(logits, s, torch.full((1, 1, 1), 255), 10, 255)
    loss.backward()
    assert float(loss) == 0.0 and s.grad is not None


def test_ece_by_hand_and_equal_to_torchmetrics():
    # Four pixels, two classes. Confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 1.0 (right):
    # bins [0.8667, 0.9333) -> conf 0.9, acc 0.5; [0.6, 0.6667) -> 0.6 vs 1; bin of 1.0 -> 0.
    # ECE = 2/4 * 0.4 + 1/4 * 0.4 + 1/4 * 0 = 0.3.
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [1.0, 0.0]])
    target = torch.tensor([0, 1, 1, 0])
    metric = SemanticCalibration(ignore_index=255)
    log_probs = probs.clamp_min(1e-12).log().T.reshape(1, 2, 1, 4)
    metric.update(log_probs, None, target.reshape(1, 1, 4))  # log_softmax(log p) = log p
    assert float(metric.compute()["ece"]) == pytest.approx(0.3, abs=1e-6)

    torch.manual_seed(1)
    logits = torch.randn(3, 5, 6, 7) * 3
    labels = torch.randint(0, 5, (3, 6, 7))
    labels[0, :2] = 255
    ours = SemanticCalibration(ignore_index=255)
    ours.update(logits, None, labels)
    reference = MulticlassCalibrationError(num_classes=5, n_bins=15, ignore_index=255)
    reference.update(logits.softmax(1), labels)
    assert float(ours.compute()["ece"]) == pytest.approx(float(reference.compute()), abs=1e-6)
    kept = labels != 255
    nll = -logits.log_softmax(1).movedim(1, -1)[kept].gather(1, labels[kept][:, None]).mean()
    assert float(ours.compute()["nll"]) == pytest.approx(float(nll), rel=1e-5)


def _regression_metric(errors, log_scales, likelihood=LAPLACE, fractions=4):
    metric = AleatoricRegressionMetrics(likelihood, fractions=fractions)
    residual = torch.tensor(errors, dtype=torch.float32).reshape(1, 1, 1, -1)
    s = torch.tensor(log_scales, dtype=torch.float32).reshape(1, 1, 1, -1)
    metric.update(residual, s, torch.ones(1, 1, len(errors), dtype=torch.bool))
    return metric


def test_ause_by_hand():
    # Two pixels, errors 1 and 3. Removing the larger first, the mean left is
    # (4 - 6 f) / (2 (1 - f)) = -1 / (1 - f) + 3 on [0, 1/2], then 1: area 2 - ln 2.
    # Removing the smaller first: 1 / (1 - f) + 1, then 3: area 2 + ln 2.
    oracle_area = 2 - math.log(2)
    perfect = _regression_metric([1.0, 3.0], [0.0, 1.0]).compute()
    assert float(perfect["ause"]) == pytest.approx(0.0, abs=1e-6)
    reversed_ = _regression_metric([1.0, 3.0], [1.0, 0.0]).compute()
    assert float(reversed_["ause"]) == pytest.approx(2 + math.log(2) - oracle_area, abs=1e-6)
    # Random order: flat at the mean 2.
    assert float(reversed_["ause_random"]) == pytest.approx(2 - oracle_area, abs=1e-6)
    # Four pixels, errors 1..4, reversed ranking: segment k adds (C / N) ln(u0 / u1) + mu / 4,
    # C = error left after the pixel - its error x pixels left. By hand: the oracle area is
    # 2.5 - 1.5 ln(4/3) - 0.75 ln(3/2) - 0.25 ln 2, the reversed one 2.5 + the same logs.
    logs = 1.5 * math.log(4 / 3) + 0.75 * math.log(1.5) + 0.25 * math.log(2)
    errors = [1.0, 2.0, 3.0, 4.0]
    perfect = _regression_metric(errors, [-1.0, 0.0, 1.0, 2.0]).compute()
    assert float(perfect["ause"]) == pytest.approx(0.0, abs=1e-6)
    reversed_ = _regression_metric(errors, [2.0, 1.0, 0.0, -1.0])
    values = reversed_.compute()
    assert float(values["ause"]) == pytest.approx(2 * logs, abs=1e-6)  # a 4-point sum: 1.5
    assert float(values["ause_random"]) == pytest.approx(logs, abs=1e-6)
    # The figure's curves are still sampled on the grid of fractions.
    curves = reversed_.curves()
    assert curves["by_uncertainty"].tolist() == pytest.approx([2.5, 3.0, 3.5, 4.0])
    assert curves["oracle"].tolist() == pytest.approx([2.5, 2.0, 1.5, 1.0])


def test_ause_is_the_integral_of_the_curve_and_a_constant_sigma_ranks_at_random():
    generator = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 5, (40,), generator=generator).double()
    sums = counts * torch.rand(40, generator=generator).double() * 3
    grid = torch.arange(100000, dtype=torch.float64) / 100000  # a fine left sum
    area = float(sparsification_area(counts, sums))
    assert area == pytest.approx(float(sparsification_curve(counts, sums, grid).mean()), abs=1e-4)
    # One s for every pixel (a task-level sigma): no pixel ranks above another.
    errors = torch.rand(1, 1, 5, 7, generator=generator) * 4
    metric = AleatoricRegressionMetrics(LAPLACE)
    metric.update(errors, torch.full((1, 1, 5, 7), 0.2), torch.ones(1, 5, 7, dtype=torch.bool))
    values = metric.compute()
    assert float(values["ause"]) == pytest.approx(float(values["ause_random"]), abs=1e-6)
    assert float(values["ause"]) > 0.1


def test_sparsification_takes_a_share_of_the_boundary_bin():
    # Two bins: 2 pixels of error sum 4 (top), 2 pixels of error sum 2. Removing 1 pixel
    # takes half the top bin at its mean 2: (6 - 2) / 3.
    curve = sparsification_curve(
        torch.tensor([2.0, 2.0]), torch.tensor([2.0, 4.0]), torch.tensor([0.0, 0.25])
    )
    assert curve.tolist() == pytest.approx([1.5, 4.0 / 3.0])


def test_coverage_by_hand_and_nominal_values():
    # Gaussian, s = 0: sigma 1. |r| = 0.5, 1.5, 2.5, 0.9 -> within 1 sigma: 2/4, 2 sigma: 3/4.
    values = _regression_metric([0.5, -1.5, 2.5, -0.9], [0.0] * 4, GAUSSIAN).compute()
    assert float(values["coverage_1sigma"]) == pytest.approx(0.5)
    assert float(values["coverage_2sigma"]) == pytest.approx(0.75)
    # Laplace with b = 1 / sqrt 2 has sigma = sqrt(2) b = 1: the same counts.
    s = [math.log(1 / math.sqrt(2))] * 4
    values = _regression_metric([0.5, -1.5, 2.5, -0.9], s, LAPLACE).compute()
    assert float(values["coverage_1sigma"]) == pytest.approx(0.5)
    assert float(values["mean_sigma"]) == pytest.approx(1.0, rel=1e-6)
    assert nominal_coverage(1, GAUSSIAN) == pytest.approx(0.6827, abs=1e-4)
    assert nominal_coverage(2, GAUSSIAN) == pytest.approx(0.9545, abs=1e-4)
    assert nominal_coverage(1, LAPLACE) == pytest.approx(1 - math.exp(-math.sqrt(2)))
    # Samples drawn from the model cover their nominal share.
    torch.manual_seed(0)
    draws = torch.distributions.Laplace(0.0, 1 / math.sqrt(2)).sample((1, 1, 1, 200000))
    metric = AleatoricRegressionMetrics(LAPLACE)
    metric.update(draws, torch.full((1, 1, 1, 200000), s[0]), torch.ones(1, 1, 200000).bool())
    values = metric.compute()
    assert float(values["coverage_1sigma"]) == pytest.approx(nominal_coverage(1, LAPLACE), abs=5e-3)
    assert float(values["coverage_2sigma"]) == pytest.approx(nominal_coverage(2, LAPLACE), abs=5e-3)
    # and the metric's NLL is the loss's per-pixel term averaged
    assert float(values["nll"]) == pytest.approx(
        float(pixel_nll(draws, torch.full((1, 1, 200000), s[0]), LAPLACE).mean()), rel=1e-5
    )
