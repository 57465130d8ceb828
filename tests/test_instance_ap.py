"""InstanceAveragePrecision: hand-computed values, official-script parity, DDP merging."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from mtlscene.data.cityscapes.labels import label_id, train_id_to_label_id
from mtlscene.metrics.instance_ap import InstanceAveragePrecision, cityscapes_average_precision

CAR, PERSON, RIDER, ROAD = (label_id(n) for n in ("car", "person", "rider", "road"))
CAR_T, PERSON_T, RIDER_T = 13, 11, 12
STATIC = label_id("static")  # void: ignored in evaluation


def box(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def prediction(masks: list[torch.Tensor], labels: list[int], scores: list[float]) -> dict:
    shape = masks[0].shape if masks else (20, 20)
    return {
        "masks": torch.stack(masks) if masks else torch.zeros(0, *shape, dtype=torch.bool),
        "labels": torch.tensor(labels, dtype=torch.long),
        "scores": torch.tensor(scores, dtype=torch.float),
    }


def one_car_scene() -> torch.Tensor:
    ids = torch.full((1, 20, 20), ROAD)
    ids[0, 0:10, 0:10] = CAR * 1000 + 1  # 100 px
    return ids


def evaluate(preds: list[dict], ids: torch.Tensor, **kwargs) -> dict[str, float]:
    metric = InstanceAveragePrecision(**kwargs)
    metric.update(preds, ids)
    return {k: float(v) for k, v in metric.compute().items()}


def test_false_positive_ranked_above_true_positive():
    # FP (score 0.9, IoU 0) above TP (0.8, IoU 72/100): curve points (p=0.5, r=1), (p=0, r=0)
    # and the artificial (1, 0); official step widths 0.5, 0.5, 0 -> AP = 0.25 at the
    # thresholds below 0.72 (0.50..0.70: 5 of 10) and 0 above, so AP = 0.125.
    ids = one_car_scene()
    pred = prediction(
        [box((20, 20), 10, 20, 10, 20), box((20, 20), 0, 9, 0, 8)], [CAR_T] * 2, [0.9, 0.8]
    )
    result = evaluate([pred], ids)
    assert result["ap50"] == pytest.approx(0.25)
    assert result["ap"] == pytest.approx(0.125)
    assert result["ap/car"] == pytest.approx(0.125)
    assert np.isnan(result["ap/person"])


def test_true_positive_ranked_above_false_positive_is_perfect():
    ids = one_car_scene()
    pred = prediction(
        [box((20, 20), 10, 20, 10, 20), box((20, 20), 0, 9, 0, 8)], [CAR_T] * 2, [0.7, 0.8]
    )
    assert evaluate([pred], ids)["ap50"] == pytest.approx(1.0)


def test_two_ground_truths_hand_computed():
    # Scores TP 0.9, FP 0.7, TP 0.5 with 2 GT: points (2/3, 1), (1/2, 1/2), (1, 1/2), (1, 0),
    # each weighing a step of 1/4 -> AP = (2/3 + 1/2 + 1 + 1) / 4 = 19/24.
    ap = cityscapes_average_precision(
        torch.tensor([0.9, 0.7, 0.5]), torch.tensor([True, False, True]), num_gt=2
    )
    assert ap == pytest.approx(19 / 24)
    ids = torch.full((1, 20, 40), ROAD)
    ids[0, 0:10, 0:10] = CAR * 1000 + 1
    ids[0, 0:10, 20:30] = CAR * 1000 + 2
    masks = [
        box((20, 40), 0, 10, 0, 10),
        box((20, 40), 12, 20, 0, 40),
        box((20, 40), 0, 10, 20, 30),
    ]
    result = evaluate([prediction(masks, [CAR_T] * 3, [0.9, 0.7, 0.5])], ids)
    assert result["ap"] == pytest.approx(19 / 24)  # IoU 1: same at every threshold


def test_duplicate_match_counts_as_false_positive():
    ids = one_car_scene()
    masks = [box((20, 20), 0, 10, 0, 10), box((20, 20), 0, 10, 0, 9)]  # IoU 1.0 and 0.9
    result = evaluate([prediction(masks, [CAR_T] * 2, [0.6, 0.8])], ids)
    # Best-scored (0.8) is the TP, 0.6 a FP ranked below it -> perfect at 0.5.
    assert result["ap50"] == pytest.approx(1.0)
    # Above IoU 0.9 only the 0.6 prediction matches: FP 0.8 above TP 0.6 -> 0.25.
    metric = InstanceAveragePrecision()
    metric.update([prediction(masks, [CAR_T] * 2, [0.6, 0.8])], ids)
    outcomes = torch.cat(metric.pred_outcomes).view(2, 10)
    assert outcomes[:, 0].tolist() == [0, 1] and outcomes[:, -1].tolist() == [1, 0]


def test_predictions_on_void_groups_and_small_instances_are_ignored():
    ids = one_car_scene()
    ids[0, 12:20, 0:8] = STATIC  # void
    ids[0, 12:20, 10:20] = CAR  # a car group region (no single instance)
    ids[0, 0:2, 15:18] = CAR * 1000 + 2  # 6 px: below min_region_pixels
    masks = [
        box((20, 20), 0, 10, 0, 10),  # TP
        box((20, 20), 12, 20, 0, 8),  # on void
        box((20, 20), 12, 20, 10, 20),  # on the group
        box((20, 20), 0, 2, 15, 18),  # on the small car
    ]
    result = evaluate([prediction(masks, [CAR_T] * 4, [0.5, 0.9, 0.9, 0.9])], ids)
    assert result["ap"] == pytest.approx(1.0)
    # As a person, the group/small car overlap does not excuse it: a FP above the TP.
    labels = [CAR_T, PERSON_T, PERSON_T, PERSON_T]
    result = evaluate([prediction(masks, labels, [0.5, 0.9, 0.9, 0.9])], ids)
    assert result["ap/car"] == pytest.approx(1.0) and np.isnan(result["ap/person"])
    # ...but the void one is ignored whatever its class.
    wrong_car = [box((20, 20), 12, 20, 0, 8), box((20, 20), 0, 10, 0, 10)]
    assert evaluate([prediction(wrong_car, [CAR_T] * 2, [0.9, 0.5])], ids)["ap"] == 1.0


def test_no_predictions_give_zero_and_no_ground_truth_gives_nan():
    ids = one_car_scene()
    result = evaluate([prediction([], [], [])], ids)
    assert result["ap"] == 0.0 and result["ap50/car"] == 0.0
    assert np.isnan(evaluate([prediction([], [], [])], torch.full((1, 20, 20), ROAD))["ap"])


def random_batch(seed: int, batch: int = 4, shape=(48, 64)) -> tuple[list[dict], torch.Tensor]:
    """Scenes with instances, groups, void and small objects; imperfect overlapping guesses."""
    rng = np.random.default_rng(seed)
    ids = torch.full((batch, *shape), ROAD)
    train_id = {CAR: CAR_T, PERSON: PERSON_T, RIDER: RIDER_T}
    preds = []
    for b in range(batch):
        ids[b, 40:48, 0:20] = STATIC
        ids[b, 0:8, 44:64] = CAR  # group
        masks, labels, scores = [], [], []
        for k in range(6):
            cls = [CAR, PERSON, RIDER][k % 3]
            h, w = rng.integers(3, 14, size=2)
            y0, x0 = rng.integers(0, shape[0] - h), rng.integers(0, shape[1] - w)
            ids[b, y0 : y0 + h, x0 : x0 + w] = cls * 1000 + k + 1
            for _ in range(rng.integers(0, 3)):  # 0-2 guesses per object
                dy, dx, dh, dw = rng.integers(-1, 2, size=4)
                masks.append(box(shape, y0 + dy, y0 + h + dy + dh, x0 + dx, x0 + w + dx + dw))
                labels.append(CAR_T if rng.random() < 0.1 else train_id[cls])
                scores.append(float(rng.random()))
        for y0, x0 in ((41, 2), (1, 46), tuple(rng.integers(0, 40, size=2))):  # void, group, any
            masks.append(box(shape, y0, y0 + 6, x0, x0 + 8))
            labels.append(int(rng.choice([CAR_T, PERSON_T])))
            scores.append(float(rng.random()))
        keep = [i for i, m in enumerate(masks) if m.any()]
        preds.append(
            prediction(
                [masks[i] for i in keep], [labels[i] for i in keep], [scores[i] for i in keep]
            )
        )
    return preds, ids


def official_ap(preds: list[dict], ids: torch.Tensor, min_region: int, tmp_path) -> dict:
    """The same evaluation by cityscapesscripts' own matching and AP code."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as official
    from cityscapesscripts.evaluation.instance import Instance
    from cityscapesscripts.helpers.labels import id2label, labels

    args = copy.copy(official.args)
    official.setInstanceLabels(args)
    args.minRegionSizes = np.array([min_region])
    args.quiet = True
    to_label_id = train_id_to_label_id()
    matches = {}
    for b, pred in enumerate(preds):
        gt = ids[b].numpy()
        instances = {lab.name: [] for lab in labels}
        for value in np.unique(gt):
            inst = Instance(gt, value)
            instances[id2label[inst.labelID].name].append(inst.toDict())
        pred_info = {}
        for j, (mask, label, score) in enumerate(zip(*pred.values(), strict=True)):
            path = str(tmp_path / f"{b}_{j}.png")
            Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(path)
            pred_info[path] = {"labelID": int(to_label_id[int(label)]), "conf": float(score)}
        gts, ps = official.assignGt2Preds(
            official.filterGtInstances(instances, args), gt, pred_info, args
        )
        matches[str(b)] = {"groundTruth": gts, "prediction": ps}
    averages = official.computeAverages(official.evaluateMatches(matches, args), args)
    result = {"ap": averages["allAp"], "ap50": averages["allAp50%"]}
    for name, values in averages["classes"].items():
        result[f"ap/{name}"], result[f"ap50/{name}"] = (
            values["ap"],
            float(np.squeeze(values["ap50%"])),
        )
    return result


@pytest.mark.parametrize("seed,min_region", [(0, 10), (1, 10), (2, 30)])
def test_matches_official_cityscapes_evaluation(seed, min_region, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "in1d", np.isin, raising=False)  # removed in NumPy 2, used there
    preds, ids = random_batch(seed)
    ours = evaluate(preds, ids, min_region_pixels=min_region)
    theirs = official_ap(preds, ids, min_region, tmp_path)
    assert 0.0 < ours["ap"] < 1.0
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_merged_halves_equal_single_process():
    preds, ids = random_batch(3, batch=6)
    full = InstanceAveragePrecision()
    full.update(preds, ids)
    first, second = InstanceAveragePrecision(), InstanceAveragePrecision()
    first.update(preds[:2], ids[:2])
    second.update(preds[2:4], ids[2:4])
    second.update(preds[4:], ids[4:])
    first.merge_state(second)
    expected, merged = full.compute(), first.compute()
    assert expected["ap"] > 0
    for key in expected:
        torch.testing.assert_close(merged[key], expected[key], equal_nan=True)


@pytest.mark.parametrize("second_has_data", [True, False])
def test_torchmetrics_sync_path_with_an_idle_rank(second_has_data):
    """Run torchmetrics' own ``_sync_dist`` with a fake two-rank all_gather."""
    preds, ids = random_batch(4)
    full = InstanceAveragePrecision()
    full.update(preds if second_has_data else preds[:2], ids if second_has_data else ids[:2])
    rank0, rank1 = InstanceAveragePrecision(), InstanceAveragePrecision()
    rank0.update(preds[:2], ids[:2])
    if second_has_data:
        rank1.update(preds[2:], ids[2:])
    sent: list[torch.Tensor] = []
    rank1._sync_dist(lambda t, group=None: sent.append(t) or [t])
    rank0._sync_dist(lambda t, group=None: [t, sent.pop(0)])
    expected, synced = full.compute(), rank0.compute()
    for key in expected:
        torch.testing.assert_close(synced[key], expected[key], equal_nan=True)


def test_mismatched_sizes_are_reported():
    with pytest.raises(ValueError, match="instance_ids"):
        evaluate([prediction([box((10, 10), 0, 5, 0, 5)], [CAR_T], [1.0])], one_car_scene())
