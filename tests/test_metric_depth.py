"""The metric depth head and its metrics (NYUv2 protocol) against hand-computed values."""

import math

import pytest
import torch

from mtlscene.metrics import MetricDepthMetrics
from mtlscene.tasks import Likelihood, MetricDepthHead, get_task


def _two_batches():
    """Batch 1: 3 valid pixels, batch 2: 1 valid pixel (and a masked, wildly wrong one)."""
    first = (
        torch.tensor([[[1.0, 3.0, 2.5, 9.0]]]),  # pred
        torch.tensor([[[2.0, 2.0, 5.0, 0.0]]]),  # target (0: no depth)
        torch.tensor([[[True, True, True, False]]]),
    )
    second = (
        torch.tensor([[[4.0, 50.0]]]),
        torch.tensor([[[2.0, 1.0]]]),
        torch.tensor([[[True, False]]]),
    )
    return first, second


def test_abs_and_rel_error_are_over_all_valid_pixels_by_default():
    metric = MetricDepthMetrics()
    for batch in _two_batches():
        metric.update(*batch)
    result = metric.compute()
    # errors 1, 1, 2.5 | 2 -> abs (1 + 1 + 2.5 + 2) / 4; rel (1/2 + 1/2 + 2.5/5 + 2/2) / 4
    assert result["abs_err"].item() == pytest.approx(6.5 / 4)
    assert result["rel_err"].item() == pytest.approx(2.5 / 4)


def test_per_batch_average_weighs_each_batch_alike():
    metric = MetricDepthMetrics(average="batch")
    for batch in _two_batches():
        metric.update(*batch)
    metric.update(torch.ones(1, 2, 2), torch.ones(1, 2, 2), torch.zeros(1, 2, 2, dtype=bool))
    result = metric.compute()  # the batch without valid pixels is skipped
    assert result["abs_err"].item() == pytest.approx((4.5 / 3 + 2.0) / 2)
    assert result["rel_err"].item() == pytest.approx((1.5 / 3 + 1.0) / 2)


def test_metrics_are_nan_before_any_valid_pixel_and_merge_exactly():
    empty = MetricDepthMetrics()
    empty.update(torch.ones(1, 2, 2), torch.ones(1, 2, 2), torch.zeros(1, 2, 2, dtype=bool))
    assert all(math.isnan(value.item()) for value in empty.compute().values())
    whole, first, second = MetricDepthMetrics(), MetricDepthMetrics(), MetricDepthMetrics()
    batches = _two_batches()
    for batch in batches:
        whole.update(*batch)
    first.update(*batches[0])
    second.update(*batches[1])
    first.merge_state(second)  # the reduction DDP applies
    assert first.compute() == whole.compute()


def test_head_loss_is_l1_over_valid_depth_and_declares_the_nyuv2_columns():
    head = MetricDepthHead(8, hidden_channels=4, num_layers=1)
    assert get_task("metric_depth") is MetricDepthHead
    assert head.likelihood is Likelihood.GAUSSIAN
    assert MetricDepthHead(8, likelihood="laplace").likelihood is Likelihood.LAPLACE
    assert head(torch.randn(2, 8, 3, 4), (6, 8)).shape == (2, 1, 6, 8)
    pred, target, mask = _two_batches()[0]
    batch = {"depth": target, "depth_mask": mask}
    assert float(head.loss(pred.unsqueeze(1), batch)) == pytest.approx(4.5 / 3)
    assert [(m.key, m.title, m.digits) for m in head.table_metrics] == [
        ("abs_err", "Abs err", 4),
        ("rel_err", "Rel err", 4),
    ]
    assert not any(m.higher_is_better for m in head.table_metrics)
    metric = head.make_metrics()
    head.update_metrics(metric, pred.unsqueeze(1), batch)
    assert metric.compute()["abs_err"].item() == pytest.approx(4.5 / 3)
    with pytest.raises(ValueError, match="metric_depth.metric_average must be"):
        MetricDepthHead(8, metric_average="image")
