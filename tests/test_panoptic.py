"""Panoptic fusion, panoptic quality (our metric vs. the official evaluator) and its files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.detection import PanopticQuality

from mtlscene.data.cityscapes.labels import label_id, label_id_lut
from mtlscene.data.cityscapes.synthetic import generate_dataset
from mtlscene.evaluation import (
    evaluate_panoptic,
    merge_panoptic_results,
    prepare_panoptic_ground_truth,
    write_panoptic_result,
)
from mtlscene.metrics import CityscapesPanopticQuality
from mtlscene.postprocess import PanopticFusion
from mtlscene.viz.colorize import colorize_panoptic

ROAD, SIDEWALK, PERSON, CAR, TRUCK = 0, 1, 11, 13, 14  # trainIds
CAR_ID, ROAD_ID = label_id("car"), label_id("road")


def _perfect(raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Panoptic (category, instance) equal to CityScapes instanceIds, crowds as instances."""
    raw = torch.from_numpy(raw.astype(np.int64))
    label = torch.where(raw >= 1000, raw // 1000, raw)
    category = torch.from_numpy(label_id_lut("trainid").astype(np.int64))[label]
    # A crowd (a thing labelId < 1000) predicted as one more instance must not be a FP.
    instance = torch.where(raw >= 1000, raw % 1000 + 1, 999)
    return category, instance


def test_fusion_stuff_keeps_its_class_instances_vote_and_small_segments_go_void():
    semantic = torch.zeros(1, 20, 40, dtype=torch.long)  # road
    semantic[0, :10, 20:30] = CAR
    semantic[0, :2, 20:22] = TRUCK  # 4 truck pixels inside the car: outvoted
    semantic[0, :10, :10] = PERSON  # a thing region no instance claims -> void
    semantic[0, 15:17, :2] = SIDEWALK  # a 4 px stuff segment -> void
    instances = torch.zeros_like(semantic)
    instances[0, :10, 20:27], instances[0, :10, 27:30] = 1, 2
    instances[0, 0, 39] = 3  # a one-pixel instance on road: no thing votes -> void
    fused = PanopticFusion(min_area=5)(semantic, instances)
    category, instance = fused["category"][0], fused["instance"][0]
    assert (category[:10, 20:30] == CAR).all()
    assert (instance[:10, 20:27] == 1).all() and (instance[:10, 27:30] == 2).all()
    assert (category[:10, :10] == 255).all() and (instance[:10, :10] == 0).all()
    assert (category[15:17, :2] == 255).all()
    assert category[0, 39] == 255 and instance[0, 39] == 0
    assert (category[10:15] == ROAD).all() and (instance[10:] == 0).all()
    kept = PanopticFusion(min_area=0)(semantic, instances)["category"][0]
    assert (kept[15:17, :2] == SIDEWALK).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fusion_on_gpu_equals_cpu():
    generator = torch.Generator().manual_seed(0)
    semantic = torch.randint(0, 19, (4, 32, 64), generator=generator)
    instances = torch.randint(0, 6, (4, 32, 64), generator=generator)
    fusion = PanopticFusion(min_area=3)
    on_cpu = fusion(semantic, instances)
    on_gpu = fusion.cuda()(semantic.cuda(), instances.cuda())
    for key in on_cpu:
        assert torch.equal(on_cpu[key], on_gpu[key].cpu())


def _ground_truth() -> np.ndarray:
    """instanceIds with stuff, void, two cars, a person and a group of cars (crowd)."""
    raw = np.full((32, 64), ROAD_ID, dtype=np.int64)
    raw[:8] = label_id("sky")
    raw[8:12, :32] = label_id("building")
    raw[28:] = 1  # ego vehicle: void
    raw[14:24, 4:16] = CAR_ID * 1000
    raw[14:24, 20:28] = CAR_ID * 1000 + 1
    raw[12:26, 40:44] = label_id("person") * 1000
    raw[16:22, 50:60] = CAR_ID  # car group
    return raw


def test_pq_is_one_for_perfect_predictions():
    raw = _ground_truth()
    category, instance = _perfect(raw)
    metric = CityscapesPanopticQuality()
    metric.update(category[None], instance[None], torch.from_numpy(raw)[None])
    result = metric.compute()
    for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert result[key] == pytest.approx(1.0), key
    assert result["pq/car"] == pytest.approx(1.0) and torch.isnan(result["pq/bus"])


def test_one_missed_and_one_split_instance_give_the_hand_computed_pq():
    # 20x40 image of road (600 px) with two 10x10 cars. Car A is missed (predicted road);
    # car B is split 70 / 30 px into two predicted cars.
    raw = torch.full((1, 20, 40), ROAD_ID)
    raw[0, :10, :10], raw[0, :10, 20:30] = CAR_ID * 1000 + 1, CAR_ID * 1000 + 2
    category = torch.zeros(1, 20, 40, dtype=torch.long)
    instance = torch.zeros_like(category)
    category[0, :10, 20:30] = CAR
    instance[0, :10, 20:27], instance[0, :10, 27:30] = 1, 2
    metric = CityscapesPanopticQuality()
    metric.update(category, instance, raw)
    result = {k: float(v) for k, v in metric.compute().items()}
    # car: the 70 px piece matches B (IoU 0.7, TP), the 30 px piece is a FP, A is a FN:
    #   SQ 0.7, RQ 1 / (1 + 0.5 + 0.5) = 0.5, PQ 0.35.
    # road: predicted 700 px covers the 600 true ones: IoU 6/7, TP: SQ = PQ = 6/7, RQ 1.
    expected = {
        "pq_things": 0.35, "sq_things": 0.7, "rq_things": 0.5,
        "pq_stuff": 6 / 7, "sq_stuff": 6 / 7, "rq_stuff": 1.0,
        "pq": (0.35 + 6 / 7) / 2, "sq": (0.7 + 6 / 7) / 2, "rq": 0.75,
    }  # fmt: skip
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key
    # Without void or crowd pixels, torchmetrics' own update counts the same.
    reference = PanopticQuality(things=metric.things, stuffs=metric.stuffs)
    target = torch.stack([torch.where(raw >= 1000, CAR, ROAD), raw % 1000], dim=-1)
    reference.update(torch.stack([category, instance], dim=-1), target)
    for state in ("iou_sum", "true_positives", "false_positives", "false_negatives"):
        assert torch.allclose(getattr(reference, state).double(), getattr(metric, state).double())


def _perturbed_prediction(raw: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """What a decent model might give: shifted, split, missed instances, class noise, fused."""
    category, instance = _perfect(raw)
    semantic = torch.where(category == 255, ROAD, category)
    # Crowds (groups of cars) come out as one more car: the official rules ignore it.
    instances = torch.where(category >= PERSON, instance, 0)
    ids = instances.unique()[1:]
    if len(ids) > 1:  # miss one: its pixels keep their class but have no instance -> void
        instances[instances == ids[0]] = 0
    if len(ids) > 2:  # split one in a left and a right part
        rows, cols = (instances == ids[1]).nonzero(as_tuple=True)
        right = cols > cols.float().quantile(0.35)
        instances[rows[right], cols[right]] = 500
    instances = torch.roll(instances, shifts=int(rng.integers(-2, 3)), dims=1)
    height, width = raw.shape
    for _ in range(6):  # blocks of a wrong class, some below the fusion's min_area
        y, x = int(rng.integers(0, height - 4)), int(rng.integers(0, width - 6))
        h, w = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        semantic[y : y + h, x : x + w] = int(rng.integers(0, 19))
    return PanopticFusion(min_area=6)(semantic[None], instances[None])


def test_official_evaluation_of_our_files_gives_our_pq(tmp_path):
    root = generate_dataset(tmp_path / "data", {"val": 4}, 64, 128, seed=5, progress=False)
    gt_json = prepare_panoptic_ground_truth(root, ["val"])[0]
    assert gt_json == root / "gtFine" / "cityscapes_panoptic_val.json" and gt_json.is_file()
    results = tmp_path / "results" / "cityscapes_panoptic_val"
    metric = CityscapesPanopticQuality()
    rng = np.random.default_rng(0)
    crowd_pixels = 0
    for path in sorted((root / "gtFine" / "val").glob("*/*_instanceIds.png")):
        raw = np.asarray(Image.open(path)).astype(np.int64)
        crowd_pixels += int(((raw >= label_id("person")) & (raw < 1000)).sum())
        fused = _perturbed_prediction(raw, rng)
        stem = path.name.removesuffix("_gtFine_instanceIds.png")
        write_panoptic_result(results, stem, fused["category"][0], fused["instance"][0])
        metric.update(fused["category"], fused["instance"], torch.from_numpy(raw)[None])
    prediction_json = merge_panoptic_results(results)
    official = evaluate_panoptic(root, "val", prediction_json)
    ours = {k: float(v) for k, v in metric.compute().items()}
    assert crowd_pixels > 400  # seed 5 has groups of cars, whose rules differ from torchmetrics
    assert 0.2 < official["pq"] < 0.9  # a real mix of matches, misses and false positives
    for key in ("pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "rq_stuff"):
        assert ours[key] == pytest.approx(official[key], abs=1e-3), key
    assert ours["pq/car"] == pytest.approx(official["per_class"]["car"]["pq"], abs=1e-3)
    annotation = json.loads(prediction_json.read_text())["annotations"][0]
    assert annotation["segments_info"] and annotation["file_name"].endswith("_panoptic.png")


def test_panoptic_picture_shades_instances_and_draws_boundaries():
    category = np.full((12, 20), ROAD)
    category[2:10, 2:18] = CAR
    instance = np.zeros_like(category)
    instance[2:10, 2:10], instance[2:10, 10:18] = 1, 2
    category[0, 0] = 255
    picture = colorize_panoptic(category, instance)
    assert tuple(picture[11, 19]) == (128, 64, 128)  # road colour
    assert tuple(picture[0, 0]) == (0, 0, 0)  # void
    assert tuple(picture[5, 9]) == (255, 255, 255)  # boundary between the two cars
    assert tuple(picture[5, 5]) != tuple(picture[5, 14])  # two shades of car
