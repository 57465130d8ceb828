"""The surface normal head and its metrics: hand-computed values, the median, DDP exactness."""

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mtlscene.metrics import SurfaceNormalMetrics
from mtlscene.tasks import Likelihood, SurfaceNormalHead, get_task


def _normals_at(angles_deg: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """1x3x1xN predictions at the given angles from the target (0, 0, 1), rotated about x."""
    radians = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    pred = torch.stack([torch.zeros_like(radians), radians.sin(), radians.cos()])
    target = torch.zeros_like(pred)
    target[2] = 1.0
    return pred[None, :, None].float(), target[None, :, None].float()


def test_normal_metrics_match_hand_computation_and_skip_invalid_pixels():
    pred, target = _normals_at([0.0, 10.0, 20.0, 45.0, 170.0])
    mask = torch.tensor([[[True, True, True, True, False]]])  # 170 deg: invalid, not counted
    metric = SurfaceNormalMetrics()
    metric.update(pred, target, mask)
    result = metric.compute()
    assert result["mean_angle"].item() == pytest.approx(75 / 4, abs=1e-4)
    assert result["median_angle"].item() == pytest.approx(15.0, abs=0.005)  # (10 + 20) / 2
    assert result["within_11_25"].item() == pytest.approx(2 / 4)
    assert result["within_22_5"].item() == pytest.approx(3 / 4)
    assert result["within_30"].item() == pytest.approx(3 / 4)


def test_angles_are_accurate_near_zero_and_zero_predictions_count_as_90_degrees():
    pred, target = _normals_at([0.01, 0.02, 0.03])
    pred = torch.cat([pred, torch.zeros(1, 3, 1, 1)], dim=3)
    target = torch.cat([target, target[..., :1]], dim=3)
    metric = SurfaceNormalMetrics()
    metric.update(pred, target, torch.ones(1, 1, 4, dtype=torch.bool))
    # acos of a float32 dot product would read 0.01 deg as 0 (cos rounds to 1).
    assert metric.compute()["mean_angle"].item() == pytest.approx((0.06 + 90) / 4, abs=1e-4)


def test_histogram_median_is_within_a_hundredth_of_a_degree_of_numpys():
    generator = torch.Generator().manual_seed(1)
    target = torch.nn.functional.normalize(torch.randn(3, 3, 17, 19, generator=generator), dim=1)
    pred = target + 0.6 * torch.randn(3, 3, 17, 19, generator=generator)
    mask = torch.rand(3, 17, 19, generator=generator) > 0.2
    metric = SurfaceNormalMetrics()
    metric.update(pred, target, mask)
    cosine = torch.nn.functional.cosine_similarity(pred.double(), target.double(), dim=1)
    angles = np.degrees(np.arccos(np.clip(cosine[mask].numpy(), -1, 1)))
    result = metric.compute()
    assert abs(result["median_angle"].item() - np.median(angles)) < 0.01
    assert result["mean_angle"].item() == pytest.approx(angles.mean(), abs=1e-4)
    assert result["within_22_5"].item() == pytest.approx((angles < 22.5).mean())


def test_per_batch_average_is_the_mean_of_each_batchs_values():
    first, first_target = _normals_at([0.0, 10.0, 20.0, 40.0])  # 4 valid pixels
    second, second_target = _normals_at([30.0, 50.0, 5.0, 5.0])
    second_mask = torch.tensor([[[True, True, False, False]]])  # 2 valid pixels
    per_batch, per_pixel = SurfaceNormalMetrics(average="batch"), SurfaceNormalMetrics()
    for metric in (per_batch, per_pixel):
        metric.update(first, first_target, torch.ones(1, 1, 4, dtype=torch.bool))
        metric.update(second, second_target, second_mask)
        metric.update(second, second_target, torch.zeros_like(second_mask))  # skipped
    batch, pixel = per_batch.compute(), per_pixel.compute()
    # batch 1: mean 17.5, median 15, <11.25 2/4; batch 2: mean 40, median 40, <11.25 0.
    assert batch["mean_angle"].item() == pytest.approx((17.5 + 40) / 2, abs=1e-4)
    assert batch["median_angle"].item() == pytest.approx((15 + 40) / 2, abs=1e-4)
    assert batch["within_11_25"].item() == pytest.approx(0.25)
    assert batch["within_30"].item() == pytest.approx((3 / 4 + 0) / 2)  # 30 is not < 30
    # Per pixel the six angles count alike: mean 150 / 6, median (20 + 30) / 2.
    assert pixel["mean_angle"].item() == pytest.approx(25.0, abs=1e-4)
    assert pixel["median_angle"].item() == pytest.approx(25.0, abs=0.005)
    assert pixel["within_11_25"].item() == pytest.approx(2 / 6)


def test_metrics_are_nan_before_any_valid_pixel():
    for average in ("pixel", "batch"):
        metric = SurfaceNormalMetrics(average=average)
        pred, target = _normals_at([1.0])
        metric.update(pred, target, torch.zeros(1, 1, 1, dtype=torch.bool))
        assert all(math.isnan(value.item()) for value in metric.compute().values())
    with pytest.raises(ValueError, match="'pixel'.*'batch'.*got 'image'"):
        SurfaceNormalMetrics(average="image")


def test_head_outputs_unit_normals_and_zero_vectors_stay_finite():
    head = SurfaceNormalHead(8, hidden_channels=4, num_layers=1)
    assert get_task("normal") is SurfaceNormalHead and head.likelihood is Likelihood.GAUSSIAN
    output = head(torch.randn(2, 8, 3, 4), (6, 8))
    assert output.shape == (2, 3, 6, 8)
    torch.testing.assert_close(output.norm(dim=1), torch.ones(2, 6, 8))
    zero = torch.zeros(1, 3, 2, 2, requires_grad=True)
    target = torch.zeros(1, 3, 2, 2)
    target[:, 2] = 1.0
    loss = head.loss(zero, {"normal": target, "normal_mask": torch.ones(1, 2, 2, dtype=bool)})
    loss.backward()
    assert float(loss.detach()) == pytest.approx(1.0) and torch.isfinite(zero.grad).all()


def test_loss_is_zero_for_identical_one_for_orthogonal_and_ignores_invalid_pixels():
    head = SurfaceNormalHead(8)
    pred, target = _normals_at([0.0, 90.0, 180.0])
    batch = {"normal": target, "normal_mask": torch.tensor([[[True, False, False]]])}
    assert float(head.loss(pred, batch)) == pytest.approx(0.0, abs=1e-6)
    batch["normal_mask"] = torch.tensor([[[False, True, False]]])
    assert float(head.loss(pred, batch)) == pytest.approx(1.0, abs=1e-6)
    batch["normal_mask"] = torch.tensor([[[True, True, True]]])
    assert float(head.loss(pred * 5.0, batch)) == pytest.approx((0 + 1 + 2) / 3, abs=1e-6)
    batch["normal_mask"] = torch.zeros(1, 1, 3, dtype=torch.bool)
    assert float(head.loss(pred, batch)) == 0.0
    assert not bool(head.target_present(batch))


def _random_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.nn.functional.normalize(torch.randn(4, 3, 12, 10, generator=generator), dim=1)
    pred = target + 0.5 * torch.randn(4, 3, 12, 10, generator=generator)
    mask = torch.rand(4, 12, 10, generator=generator) > 0.3
    return pred, target, mask


def _ddp_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        pred, target, mask = _random_split()
        metric = SurfaceNormalMetrics()
        # Rank 0 sees images 0-2 (one batch of 3), rank 1 image 3: uneven on purpose.
        part = slice(0, 3) if rank == 0 else slice(3, 4)
        metric.update(pred[part], target[part], mask[part])
        result = metric.compute()  # torchmetrics sums the states over both processes here
        if rank == 0:
            torch.save({key: value.item() for key, value in result.items()}, out)
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_numbers_of_one_process(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(port, str(out)), nprocs=2, join=True)
    merged = torch.load(out)
    single = SurfaceNormalMetrics()
    single.update(*_random_split())
    expected = {key: value.item() for key, value in single.compute().items()}
    # Counts (shares, the median's histogram) are exact; the float64 angle sum may differ
    # in its last bits from the order of summation.
    assert merged == pytest.approx(expected, rel=1e-6)
    for key in ("median_angle", "within_11_25", "within_22_5", "within_30"):
        assert merged[key] == expected[key], key
