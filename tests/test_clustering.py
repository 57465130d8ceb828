"""CentroidVoteClustering: exact recovery, noise robustness, edge cases, batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtlscene.data.cityscapes.labels import label_id, label_id_lut
from mtlscene.metrics.instance_ap import InstanceAveragePrecision
from mtlscene.postprocess import CentroidVoteClustering
from mtlscene.postprocess.clustering import _box_sum, _sliding_max

CAR, PERSON, ROAD = label_id("car"), label_id("person"), label_id("road")
TRAIN_ID = torch.from_numpy(label_id_lut("trainid").astype("int64"))


def semantic_of(instance_ids: torch.Tensor) -> torch.Tensor:
    """Perfect trainId prediction from CityScapes instanceIds."""
    return TRAIN_ID[torch.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)]


def centroid_offsets(instance_ids: torch.Tensor) -> torch.Tensor:
    """Perfect (dy, dx) from each instance pixel to its instance centroid, Bx2xHxW."""
    batch, height, width = instance_ids.shape
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    offsets = torch.zeros(batch, 2, height, width)
    for b in range(batch):
        for value in instance_ids[b].unique():
            if value < 1000:
                continue
            member = instance_ids[b] == value
            offsets[b, 0][member] = ys[member].float().mean() - ys[member]
            offsets[b, 1][member] = xs[member].float().mean() - xs[member]
    return offsets


def handmade_scene() -> torch.Tensor:
    """Two classes; cars touching each other, a person touching a car, separate ones."""
    ids = torch.full((1, 64, 128), ROAD)
    boxes = [
        (CAR * 1000 + 1, 10, 30, 10, 41),
        (CAR * 1000 + 2, 10, 30, 41, 71),  # touches car 1
        (PERSON * 1000 + 1, 5, 35, 71, 81),  # touches car 2
        (PERSON * 1000 + 2, 40, 60, 90, 101),
        (CAR * 1000 + 3, 40, 60, 10, 51),
        (PERSON * 1000 + 3, 38, 62, 51, 58),  # touches car 3
    ]
    for value, y0, y1, x0, x1 in boxes:
        ids[0, y0:y1, x0:x1] = value
    return ids


def random_scenes(batch: int, seed: int, height: int = 96, width: int = 192) -> torch.Tensor:
    """Random occluding rectangles of cars and persons, instanceIds BxHxW."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, height, width), ROAD)
    for b in range(batch):
        for k in range(10):
            cls = CAR if k % 2 else PERSON
            h = int(torch.randint(12, 30, (1,), generator=gen))
            w = int(torch.randint(8, 20, (1,), generator=gen)) * (2 if cls == CAR else 1)
            y0 = int(torch.randint(0, height - h, (1,), generator=gen))
            x0 = int(torch.randint(0, width - w, (1,), generator=gen))
            ids[b, y0 : y0 + h, x0 : x0 + w] = cls * 1000 + k + 1
    return ids


def average_precision(ids: torch.Tensor, offsets: torch.Tensor, **kwargs) -> float:
    predictions = CentroidVoteClustering(**kwargs)(semantic_of(ids), offsets)
    metric = InstanceAveragePrecision()
    metric.update(predictions, ids)
    return float(metric.compute()["ap"])


def test_perfect_vectors_recover_every_instance_exactly():
    ids = handmade_scene()
    out = CentroidVoteClustering()(semantic_of(ids), centroid_offsets(ids))[0]
    gt_values = [v for v in ids.unique().tolist() if v >= 1000]
    assert out["masks"].shape == (len(gt_values), 64, 128)
    recovered = {tuple(m.nonzero().flatten().tolist()) for m in out["masks"]}
    expected = {tuple((ids[0] == v).nonzero().flatten().tolist()) for v in gt_values}
    assert recovered == expected
    for mask, label in zip(out["masks"], out["labels"], strict=True):
        assert int(label) == int(semantic_of(ids)[0][mask][0])
    assert torch.equal(out["instance_map"] > 0, ids[0] >= 1000)
    assert average_precision(ids, centroid_offsets(ids)) == 1.0


def test_perfect_vectors_random_scenes_give_ap_one():
    ids = random_scenes(3, seed=0)
    assert average_precision(ids, centroid_offsets(ids)) == pytest.approx(1.0)


def test_noise_degrades_gracefully():
    ids = random_scenes(4, seed=1)
    offsets = centroid_offsets(ids)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(offsets.shape, generator=gen)
    ap = {s: average_precision(ids, offsets + s * noise) for s in (0.0, 1.0, 3.0)}
    assert ap[1.0] > 0.8
    assert ap[0.0] >= ap[1.0] - 1e-6 and ap[1.0] >= ap[3.0] - 0.02
    huge = CentroidVoteClustering()(semantic_of(ids), offsets + 20.0 * noise)
    for out in huge:  # garbage in: valid, consistent garbage out
        assert out["masks"].sum(0).max() <= 1
        assert torch.equal(out["masks"].any(0), out["instance_map"] > 0)
        assert len(out["labels"]) == len(out["scores"]) == out["masks"].shape[0] <= 100


def test_no_thing_pixels_give_no_instances():
    semantic = torch.zeros(2, 16, 32, dtype=torch.long)  # all road
    outs = CentroidVoteClustering()(semantic, torch.randn(2, 2, 16, 32))
    for out in outs:
        assert out["masks"].shape == (0, 16, 32) and out["masks"].dtype == torch.bool
        assert out["labels"].shape == (0,) and out["scores"].shape == (0,)
        assert not out["instance_map"].any()


def test_batched_equals_per_image():
    ids = random_scenes(3, seed=2)
    offsets = centroid_offsets(ids) + 2.0 * torch.randn(3, 2, 96, 192)
    probs = torch.rand(3, 19, 96, 192).softmax(dim=1)
    cluster = CentroidVoteClustering()
    batched = cluster(semantic_of(ids), offsets, probs)
    for b in range(3):
        single = cluster(semantic_of(ids[b : b + 1]), offsets[b : b + 1], probs[b : b + 1])[0]
        for key in ("masks", "labels", "scores", "instance_map"):
            assert torch.equal(batched[b][key], single[key]), key


def test_scores_use_semantic_confidence_and_are_sorted():
    ids = handmade_scene()
    semantic, offsets = semantic_of(ids), centroid_offsets(ids)
    probs = torch.full((1, 19, 64, 128), 0.5 / 18)
    probs.scatter_(1, semantic[:, None], 0.5)
    out = CentroidVoteClustering()(semantic, offsets, probs)[0]
    assert torch.allclose(out["scores"], torch.full_like(out["scores"], 0.5))
    noisy = CentroidVoteClustering()(semantic, offsets + 2 * torch.randn(1, 2, 64, 128))[0]
    assert torch.all(noisy["scores"][:-1] >= noisy["scores"][1:])


def test_class_grouping_separates_co_centred_objects():
    ids = torch.full((1, 40, 40), ROAD)
    ids[0, 10:30, 10:30] = CAR * 1000 + 1
    ids[0, 15:25, 15:25] = PERSON * 1000 + 1  # same centroid as the car
    offsets = centroid_offsets(ids)
    grouped = CentroidVoteClustering()(semantic_of(ids), offsets)[0]
    assert sorted(grouped["labels"].tolist()) == [11, 13]
    merged = CentroidVoteClustering(group_by_class=False)(semantic_of(ids), offsets)[0]
    assert merged["labels"].tolist() == [13]  # car pixels are the majority


def test_min_pixels_and_max_instances():
    ids = handmade_scene()
    small = CentroidVoteClustering(min_pixels=301)(semantic_of(ids), centroid_offsets(ids))[0]
    assert small["masks"].sum((1, 2)).min() >= 301 and len(small["labels"]) == 3
    capped = CentroidVoteClustering(max_instances=2)(semantic_of(ids), centroid_offsets(ids))[0]
    assert len(capped["labels"]) == 2


def test_min_votes_fraction_scales_with_image_area():
    ids = handmade_scene()  # smallest instance: 168 px in 64x128
    loose = CentroidVoteClustering(min_votes_fraction=160 / (64 * 128))
    strict = CentroidVoteClustering(min_votes_fraction=610 / (64 * 128))  # cars of 620, 820
    assert len(loose(semantic_of(ids), centroid_offsets(ids))[0]["labels"]) == 6
    assert len(strict(semantic_of(ids), centroid_offsets(ids))[0]["labels"]) == 2


def test_fast_window_kernels_equal_torch_pooling():
    x = torch.randint(0, 5, (3, 37, 53)).float()
    for k in (1, 3, 7, 11):
        box = F.avg_pool2d(x[:, None], k, 1, k // 2, count_include_pad=True)[:, 0] * k * k
        torch.testing.assert_close(_box_sum(x, k), box)
        peak = F.max_pool2d(x[:, None], k, 1, k // 2)[:, 0]
        assert torch.equal(_sliding_max(_sliding_max(x, k, dim=-1), k, dim=-2), peak)


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match="offsets shape"):
        CentroidVoteClustering()(torch.zeros(1, 8, 8, dtype=torch.long), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match="vote_kernel"):
        CentroidVoteClustering(vote_kernel=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    ids = random_scenes(2, seed=3)
    offsets = centroid_offsets(ids) + torch.randn(2, 2, 96, 192)
    cluster = CentroidVoteClustering()
    cpu = cluster(semantic_of(ids), offsets)
    gpu = cluster.cuda()(semantic_of(ids).cuda(), offsets.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        assert torch.equal(a["instance_map"], b["instance_map"].cpu())
