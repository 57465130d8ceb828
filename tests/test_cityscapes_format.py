"""Result files accepted by the official CityScapes evaluation, which agrees with our metrics."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlscene.data.cityscapes.labels import label_id, label_id_lut
from mtlscene.evaluation import (
    evaluate_instance_level,
    evaluate_pixel_level,
    write_instance_result,
    write_semantic_result,
)
from mtlscene.metrics import SemanticSegmentationMetrics

HEIGHT, WIDTH = 64, 128
STEMS = ("frankfurt_000000_000294", "frankfurt_000000_000576")


def _ground_truth(index: int) -> tuple[np.ndarray, np.ndarray]:
    """labelIds and instanceIds of one image with void, stuff, instances and a car group."""
    labels = np.full((HEIGHT, WIDTH), label_id("road"), dtype=np.uint8)
    labels[:16] = label_id("sky")
    labels[16:32, :64] = label_id("building")
    labels[16:32, 64:] = label_id("vegetation") if index else label_id("sidewalk")
    labels[56:] = 1  # ego vehicle (void)
    labels[:4, :8] = 0  # unlabeled (void)
    instances = labels.astype(np.uint16)  # 16-bit PNG, as in CityScapes
    car, person = label_id("car"), label_id("person")
    labels[34:50, 10:40] = car  # 480 px
    instances[34:50, 10:40] = car * 1000 + 0
    labels[36:52, 50:62] = car  # 192 px
    instances[36:52, 50:62] = car * 1000 + 1
    labels[33:55, 80:88] = person  # 176 px
    instances[33:55, 80:88] = person * 1000 + index
    labels[40:48, 100:120] = car  # a group of cars: no single instance
    return labels, instances


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    city = tmp_path / "gtFine" / "val" / "frankfurt"
    city.mkdir(parents=True)
    for index, stem in enumerate(STEMS):
        labels, instances = _ground_truth(index)
        Image.fromarray(labels).save(city / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instances).save(city / f"{stem}_gtFine_instanceIds.png")
    return tmp_path


def test_official_miou_equals_ours(cityscapes_root: Path, tmp_path: Path):
    pred_dir = tmp_path / "results"
    lut = label_id_lut("trainid")
    ours = SemanticSegmentationMetrics.from_label_set("trainid")
    for index, stem in enumerate(STEMS):
        target = lut[_ground_truth(index)[0]]
        prediction = np.where(target == 255, 0, target)
        prediction[:16, :32] = 2  # sky -> building
        prediction[34:42, 10:40] = 14  # part of a car -> truck (absent from the ground truth)
        prediction[16:32, 64:80] = 0 if index else 9  # sidewalk/vegetation -> road/terrain
        prediction[60:, :] = 255  # no prediction: written as "unlabeled" on a void region
        write_semantic_result(pred_dir, stem, prediction)
        ours.update(
            torch.from_numpy(prediction.astype(np.int64))[None],
            torch.from_numpy(target)[None].long(),
        )
    official = evaluate_pixel_level(cityscapes_root, "val", pred_dir)
    mine = ours.compute()
    assert 0.3 < official["miou"] < 0.95
    assert official["miou"] == pytest.approx(mine["miou"].item(), abs=1e-3)
    for name, iou in official["iou"].items():
        key = f"iou/{name.replace(' ', '_')}"
        assert (math.isnan(iou) and math.isnan(mine[key].item())) or iou == pytest.approx(
            mine[key].item(), abs=1e-5
        ), name
    assert official["iou"]["truck"] == 0.0 and math.isnan(official["iou"]["bus"])


def test_official_instance_ap_is_one_for_perfect_masks_and_drops_with_a_false_positive(
    cityscapes_root: Path, tmp_path: Path
):
    pred_dir = tmp_path / "results"
    lut = label_id_lut("trainid")
    for index, stem in enumerate(STEMS):
        labels, instances = _ground_truth(index)
        ids = [i for i in np.unique(instances) if i >= 1000]
        masks = np.stack([instances == i for i in ids])
        train_ids = lut[np.array(ids) // 1000]
        write_instance_result(pred_dir, stem, masks, train_ids, np.linspace(0.9, 0.5, len(ids)))
        # Semantic results in the same folder must not confuse either evaluation.
        write_semantic_result(pred_dir, stem, lut[labels])
    result = evaluate_instance_level(cityscapes_root, "val", pred_dir)
    assert result["ap"] == pytest.approx(1.0) and result["ap50"] == pytest.approx(1.0)
    assert result["class_ap"]["car"] == pytest.approx(1.0)
    assert math.isnan(result["class_ap"]["bus"])
    assert evaluate_pixel_level(cityscapes_root, "val", pred_dir)["miou"] == pytest.approx(1.0)

    # A confident car on the road that matches nothing lowers the car AP.
    labels, instances = _ground_truth(0)
    ids = [i for i in np.unique(instances) if i >= 1000]
    false_car = np.zeros((HEIGHT, WIDTH), dtype=bool)
    false_car[42:54, 66:78] = True
    masks = np.stack([instances == i for i in ids] + [false_car])
    train_ids = np.append(lut[np.array(ids) // 1000], lut[label_id("car")])
    write_instance_result(pred_dir, STEMS[0], masks, train_ids, [0.5] * len(ids) + [0.99])
    worse = evaluate_instance_level(cityscapes_root, "val", pred_dir)
    assert worse["class_ap"]["car"] < 0.9 and worse["class_ap"]["person"] == pytest.approx(1.0)


def test_missing_prediction_is_reported_with_the_official_reason(cityscapes_root, tmp_path):
    pred_dir = tmp_path / "results"
    write_semantic_result(pred_dir, STEMS[0], np.zeros((HEIGHT, WIDTH), dtype=np.uint8))
    with pytest.raises(RuntimeError, match="Found no prediction"):
        evaluate_pixel_level(cityscapes_root, "val", pred_dir)


def test_evaluations_can_be_restricted_to_the_predicted_frames(cityscapes_root, tmp_path):
    pred_dir = tmp_path / "results"
    labels, instances = _ground_truth(0)
    lut = label_id_lut("trainid")
    write_semantic_result(pred_dir, STEMS[0], lut[labels])
    ids = [i for i in np.unique(instances) if i >= 1000]
    masks = np.stack([instances == i for i in ids])
    write_instance_result(pred_dir, STEMS[0], masks, lut[np.array(ids) // 1000], [0.9] * 3)
    pixel = evaluate_pixel_level(cityscapes_root, "val", pred_dir, True, stems=[STEMS[0]])
    assert pixel["miou"] == pytest.approx(1.0)
    # Instance-weighted IoU: perfect on the predicted frame, for classes and categories.
    assert pixel["imiou"] == pytest.approx(1.0) and pixel["category_imiou"] == pytest.approx(1.0)
    assert set(pixel["iiou"]) == {"car", "person"}
    assert set(pixel["category_iiou"]) == {"human", "vehicle"}
    instance = evaluate_instance_level(cityscapes_root, "val", pred_dir, stems=[STEMS[0]])
    assert instance["ap"] == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError, match="frankfurt_000000_999999"):
        evaluate_pixel_level(cityscapes_root, "val", pred_dir, stems=["frankfurt_000000_999999"])


def test_writers_reject_what_the_official_format_cannot_hold(tmp_path: Path):
    with pytest.raises(ValueError, match="no spaces"):
        write_semantic_result(tmp_path, "bad stem", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="not instance classes"):
        write_instance_result(tmp_path, STEMS[0], np.ones((1, 2, 2), bool), [0], [0.5])


def test_distance_limited_ap_uses_the_disparity_and_camera(tmp_path: Path):
    # Two cars of 1600 px (the distance APs ignore instances under 1000 px): one at 30 m,
    # found; one at 80 m, missed. Depth = baseline * fx / disparity = 400 / d.
    stem, split = STEMS[0], "val"
    labels = np.full((HEIGHT, WIDTH), label_id("road"), dtype=np.uint8)
    instances = labels.astype(np.uint16)
    disparity = np.full((HEIGHT, WIDTH), 20.0)
    car = label_id("car")
    for k, (columns, metres) in enumerate(((slice(0, 40), 30.0), (slice(60, 100), 80.0))):
        labels[10:50, columns] = car
        instances[10:50, columns] = car * 1000 + k
        disparity[10:50, columns] = 400.0 / metres
    for folder, name, array in (
        ("gtFine", f"{stem}_gtFine_labelIds.png", labels),
        ("gtFine", f"{stem}_gtFine_instanceIds.png", instances),
        ("disparity", f"{stem}_disparity.png", (disparity * 256 + 1).astype(np.uint16)),
    ):
        (tmp_path / folder / split / "frankfurt").mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / folder / split / "frankfurt" / name)
    camera = tmp_path / "camera" / split / "frankfurt" / f"{stem}_camera.json"
    camera.parent.mkdir(parents=True)
    camera.write_text('{"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": 2000.0}}')
    pred_dir = tmp_path / "results"
    lut = label_id_lut("trainid")
    write_instance_result(pred_dir, stem, (instances == car * 1000)[None], lut[[car]], [0.9])
    result = evaluate_instance_level(tmp_path, split, pred_dir, distances=True)
    assert result["ap50m"] == pytest.approx(1.0)  # only the near car counts within 50 m
    assert result["ap100m"] == pytest.approx(result["ap"]) and result["ap100m"] < 0.9
    assert result["ap50_50m"] == pytest.approx(1.0)
