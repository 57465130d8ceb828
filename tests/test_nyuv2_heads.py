"""The NYUv2 task set: a 13-class semantic head, metric depth and normals, trained together."""

import pytest
import torch

from mtlscene.data.nyuv2.layout import NYUV2_CLASS_NAMES
from mtlscene.tasks import HeadKind, SemanticHead

IGNORE = 255


def test_num_classes_gives_that_many_logits_and_the_nyuv2_table_columns():
    head = SemanticHead(8, num_classes=13, hidden_channels=4, num_layers=1)
    assert head.label_set == "custom" and head.class_names[:2] == ("class 0", "class 1")
    assert head(torch.randn(1, 8, 2, 3), (4, 6)).shape == (1, 13, 4, 6)
    assert head.output_kind not in (HeadKind.CLASS_LOGITS_TRAINID, HeadKind.CLASS_LOGITS_CATEGORY)
    assert [(m.key, m.title, m.in_delta) for m in head.table_metrics] == [
        ("miou", "mIoU %", True),
        ("pixel_accuracy", "Pix acc %", True),
    ]
    nyu = SemanticHead(8, label_set="nyuv2")
    assert nyu.class_names == NYUV2_CLASS_NAMES and nyu.out_channels == 13
    assert nyu.output_kind == "class_logits/nyuv2"


def test_cityscapes_heads_are_unchanged():
    head = SemanticHead(8)
    assert (head.label_set, head.out_channels, head.output_kind) == (
        "trainid",
        19,
        HeadKind.CLASS_LOGITS_TRAINID,
    )
    assert [m.key for m in head.table_metrics] == ["miou"]
    assert SemanticHead(8, label_set="category").output_kind == HeadKind.CLASS_LOGITS_CATEGORY


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_set": "trainid", "num_classes": 13}, "num_classes is 13 but label_set 'trainid'"),
        ({"label_set": "nyuv2", "class_names": ["a", "b"]}, "nyuv2 has 13 classes"),
        ({"label_set": "category", "class_names": ["a"] * 7}, "cannot rename"),
        ({"label_set": "nyu"}, "unknown label_set 'nyu'"),
        ({"label_set": "custom"}, "needs num_classes or class_names"),
    ],
)
def test_inconsistent_class_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SemanticHead(8, **options)


def test_13_class_loss_and_metrics_ignore_255():
    head = SemanticHead(8, label_set="nyuv2")
    target = torch.tensor([[[0, 12, IGNORE], [5, 5, IGNORE]]])
    predicted = torch.tensor([[[0, 12, 3], [5, 7, 1]]])
    logits = torch.nn.functional.one_hot(predicted, 13).permute(0, 3, 1, 2).float() * 4.0
    logits.requires_grad_(True)
    loss = head.loss(logits, {"semantic": target})
    # Four labelled pixels: three right, one wrong (a one-hot logit of 4 against 12 zeros).
    right = -torch.log_softmax(torch.tensor([4.0] + [0.0] * 12), 0)[0]
    wrong = -torch.log_softmax(torch.tensor([4.0] + [0.0] * 12), 0)[1]
    assert float(loss.detach()) == pytest.approx(float(3 * right + wrong) / 4, rel=1e-5)
    metric = head.make_metrics()
    head.update_metrics(metric, logits.detach(), {"semantic": target})
    result = metric.compute()
    assert result["pixel_accuracy"].item() == pytest.approx(3 / 4)
    # IoU: bed 1, window 1, furniture (5) 1/2, objects (7) 0/1 -> mean over 4 classes.
    assert result["miou"].item() == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert result["iou/window"].item() == 1.0


def test_the_nyuv2_task_set_trains_a_step_with_uncertainty_weighting():
    from mtlscene.models import DeepLabEncoder
    from mtlscene.trainers import MultiTaskModule
    from mtlscene.weighting import UncertaintyWeighting

    small = {"hidden_channels": 4, "num_layers": 1}
    model = MultiTaskModule(
        backbone=DeepLabEncoder("resnet18", output_stride=16, aspp_channels=8),
        tasks={"semantic": {"num_classes": 13, **small}, "metric_depth": small, "normal": small},
        weighting=UncertaintyWeighting(),
    )
    assert model.clustering is None and model.panoptic is None  # no CityScapes kinds
    table = model.table_metrics()
    assert list(table) == ["semantic", "metric_depth", "normal"]  # no panoptic column
    assert sum(m.in_delta for metrics in table.values() for m in metrics) == 9  # NYUv2's Δm
    normal = torch.zeros(2, 3, 32, 48)
    normal[:, 2] = 1.0
    depth = torch.full((2, 32, 48), 3.0)
    depth[:, :4] = 0.0
    batch = {
        "image": torch.rand(2, 3, 32, 48),
        "semantic": torch.randint(0, 13, (2, 32, 48)),
        "depth": depth,
        "depth_mask": depth > 0,
        "normal": normal,
        "normal_mask": torch.ones(2, 32, 48, dtype=torch.bool),
    }
    batch["semantic"][:, :2] = IGNORE
    total = model.training_step(batch, 0)
    total.backward()
    assert torch.isfinite(total)
    likelihoods = {name: head.likelihood.value for name, head in model.heads.items()}
    assert likelihoods == {
        "semantic": "boltzmann",
        "metric_depth": "gaussian",
        "normal": "gaussian",
    }
    for name, s in model.weighting.log_variance.items():
        assert s.grad is not None and float(s.grad) != 0.0, name
    model.eval()
    with torch.no_grad():
        model.validation_step(batch, 0)
    results = {name: metric.compute() for name, metric in model.stage_metrics["val"].items()}
    assert set(results) == {"semantic", "metric_depth", "normal"}
    # The same values by hand from the network's outputs: angles to the target normal
    # (0, 0, 1), and depth errors against 3 m on the valid rows (4 and below).
    with torch.no_grad():
        outputs = model(batch["image"])
    normal = outputs["normal"].double()
    angle = torch.rad2deg(torch.atan2(normal[:, :2].norm(dim=1), normal[:, 2]))
    assert results["normal"]["mean_angle"].item() == pytest.approx(float(angle.mean()), rel=1e-6)
    within_30 = float((angle < 30).double().mean())
    assert results["normal"]["within_30"].item() == pytest.approx(within_30, abs=1e-9)
    depth_error = (outputs["metric_depth"][:, 0, 4:].double() - 3.0).abs().mean()
    assert results["metric_depth"]["abs_err"].item() == pytest.approx(float(depth_error), rel=1e-6)
