"""Task metrics against hand-computed values, and their exactness when states are merged (DDP)."""

import math

import pytest
import torch

from mtlscene.metrics import DisparityMetrics, OffsetError, SemanticSegmentationMetrics

IGNORE = 255


def _semantic_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 2x3 images with three classes and a known confusion.

    Valid pixels (gt -> pred): 0->0 x2, 0->1, 1->1 x2, 1->2, 2->2, 2->0; 4 ignored pixels.
    """
    target = torch.tensor(
        [[[0, 0, 0], [1, 1, 1]], [[2, 2, IGNORE], [IGNORE, IGNORE, IGNORE]]],
    )
    preds = torch.tensor(
        [[[0, 0, 1], [1, 1, 2]], [[2, 0, 1], [2, 0, 0]]],
    )
    return preds, target


def test_semantic_iou_and_accuracy_match_hand_computation():
    preds, target = _semantic_example()
    metric = SemanticSegmentationMetrics(num_classes=3, class_names=["road", "traffic light", "c"])
    metric.update(preds, target)
    result = metric.compute()
    # class 0: tp 2, fp 1 (gt 2), fn 1 -> 2/4; class 1: tp 2, fp 1, fn 1 -> 2/4;
    # class 2: tp 1, fp 1, fn 1 -> 1/3. Predictions on ignored pixels count for nothing.
    assert result["iou/road"].item() == pytest.approx(0.5)
    assert result["iou/traffic_light"].item() == pytest.approx(0.5)
    assert result["iou/c"].item() == pytest.approx(1 / 3)
    assert result["miou"].item() == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert result["pixel_accuracy"].item() == pytest.approx(5 / 8)
    assert metric.confusion_matrix.sum().item() == 8


def test_semantic_class_absent_everywhere_is_nan_and_left_out_of_the_mean():
    preds, target = _semantic_example()
    metric = SemanticSegmentationMetrics(num_classes=4)
    metric.update(preds, target)
    result = metric.compute()
    assert math.isnan(result["iou/3"].item())
    assert result["miou"].item() == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)


def test_semantic_logits_give_the_same_result_as_indices():
    preds, target = _semantic_example()
    logits = torch.nn.functional.one_hot(preds, 3).permute(0, 3, 1, 2).float() * 5.0
    logits += 0.1 * torch.randn_like(logits)
    from_indices = SemanticSegmentationMetrics(num_classes=3)
    from_logits = SemanticSegmentationMetrics(num_classes=3)
    from_indices.update(preds, target)
    from_logits.update(logits, target)
    assert torch.equal(from_indices.confusion_matrix, from_logits.confusion_matrix)


def test_semantic_rejects_targets_outside_the_classes():
    metric = SemanticSegmentationMetrics(num_classes=3)
    with pytest.raises(ValueError, match="outside"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 7))


def test_semantic_from_label_set_names_the_cityscapes_classes():
    metric = SemanticSegmentationMetrics.from_label_set("trainid")
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    result = metric.compute()
    assert result["iou/road"].item() == 1.0
    assert "iou/traffic_light" in result and len(result) == 19 + 2


def test_disparity_metrics_match_hand_computation_and_relative_error_skips_zero():
    target = torch.tensor([[[2.0, 4.0, 0.0], [1.0, 5.0, 3.0]]])
    pred = torch.tensor([[[3.0, 2.0, 0.5], [1.0, 100.0, 3.0]]]).unsqueeze(1)  # Bx1xHxW
    mask = torch.tensor([[[True, True, True], [True, False, False]]])
    metric = DisparityMetrics()
    metric.update(pred, target, mask)
    result = metric.compute()
    # valid errors: 1, 2, 0.5, 0 -> mae 3.5/4, rmse sqrt(5.25/4); the masked 95 px error is
    # ignored; rel over d > 0 only: (1/2 + 2/4 + 0/1) / 3.
    assert result["mae"].item() == pytest.approx(3.5 / 4)
    assert result["rmse"].item() == pytest.approx(math.sqrt(5.25 / 4))
    assert result["rel"].item() == pytest.approx(1.0 / 3)


def test_offset_error_is_the_mean_l1_norm_over_instance_pixels():
    target = torch.zeros(1, 2, 2, 2)
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, :, 0, 0] = torch.tensor([3.0, -4.0])  # L1 7 (Euclidean would be 5)
    pred[0, :, 0, 1] = torch.tensor([1.0, 0.0])  # L1 1
    pred[0, :, 1, 1] = torch.tensor([50.0, 50.0])  # not an instance pixel
    mask = torch.tensor([[[True, True], [True, False]]])
    metric = OffsetError()
    metric.update(pred, target, mask)
    assert metric.compute()["mae"].item() == pytest.approx(8.0 / 3)


def test_metrics_are_nan_before_any_valid_pixel():
    disparity, offset = DisparityMetrics(), OffsetError()
    disparity.update(torch.ones(1, 2, 2), torch.ones(1, 2, 2), torch.zeros(1, 2, 2, dtype=bool))
    offset.update(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=bool))
    assert all(math.isnan(v.item()) for v in disparity.compute().values())
    assert math.isnan(offset.compute()["mae"].item())
    semantic = SemanticSegmentationMetrics(num_classes=3)
    semantic.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), IGNORE))
    assert math.isnan(semantic.compute()["miou"].item())


def _assert_same(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], equal_nan=True, msg=key)


def test_merged_halves_equal_one_metric_over_everything():
    """``merge_state`` applies the same reduction as the DDP sync, so this checks DDP exactness."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 6, 7, generator=generator)
    labels = torch.randint(0, 5, (4, 6, 7), generator=generator)
    labels[:, 0] = IGNORE
    pred_disparity = torch.rand(4, 6, 7, generator=generator) * 10
    disparity = torch.rand(4, 6, 7, generator=generator) * 10
    disparity[:, :, 0] = 0.0
    valid = torch.rand(4, 6, 7, generator=generator) > 0.3
    pred_offset = torch.randn(4, 2, 6, 7, generator=generator)
    offset = torch.randn(4, 2, 6, 7, generator=generator)
    cases = [
        (lambda: SemanticSegmentationMetrics(num_classes=5), (logits, labels)),
        (DisparityMetrics, (pred_disparity, disparity, valid)),
        (OffsetError, (pred_offset, offset, valid)),
    ]
    for make, inputs in cases:
        whole, first, second = make(), make(), make()
        whole.update(*inputs)
        first.update(*(x[:2] for x in inputs))
        second.update(*(x[2:] for x in inputs))
        first.merge_state(second)
        _assert_same(first.compute(), whole.compute())
