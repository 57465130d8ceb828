"""The calibration metrics of test_aleatoric_training on a part of a fixed batch, and the
worker that computes them on one gloo rank.

Apart from the test module so that each spawned rank imports torch and the metrics only,
not the CLI and Lightning the test module needs (seconds per process).
"""

import os

import torch
import torch.distributed as dist

from mtlscene.metrics.aleatoric import AleatoricRegressionMetrics, SemanticCalibration


def _data(part: int | None):
    generator = torch.Generator().manual_seed(3)
    residual = torch.randn(4, 2, 6, 5, generator=generator)
    s = torch.randn(4, 1, 6, 5, generator=generator)
    mask = torch.rand(4, 6, 5, generator=generator) > 0.3
    logits = torch.randn(4, 7, 6, 5, generator=generator) * 2
    target = torch.randint(0, 7, (4, 6, 5), generator=generator)
    target[1, :3] = 255
    if part is None:
        return residual, s, mask, logits, target
    rows = slice(2 * part, 2 * part + 2)
    return residual[rows], s[rows], mask[rows], logits[rows], target[rows]


def calibration_metrics(part: int | None):
    torch.manual_seed(0)
    residual, s, mask, logits, target = _data(part)
    regression = AleatoricRegressionMetrics()
    regression.update(residual, s, mask)
    semantic = SemanticCalibration(samples=1)
    semantic.update(logits, None, target)
    values = {f"r/{k}": float(v) for k, v in regression.compute().items()}
    values |= {f"s/{k}": float(v) for k, v in semantic.compute().items()}
    return values


def rank_worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        queue.put((rank, calibration_metrics(rank)))
    finally:
        dist.destroy_process_group()
