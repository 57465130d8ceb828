"""Per-pixel against per-batch averaging of the NYUv2 depth and normal metrics.

mtlscene averages over every valid pixel of a split; the code behind the published NYUv2
tables averages per batch, then over batches. This prints both for two stand-in predictors
on an NYUv2 root (mtan layout), side by side, so the difference is measured, not argued:
"constant" (mean training depth and normal everywhere) and "noisy" (the truth with noise whose
size varies per image, as a trained model's quality does).

    python benchmarks/metric_averaging.py data/synthetic_nyuv2 --batch-sizes 2 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mtlscene.metrics import MetricDepthMetrics, SurfaceNormalMetrics

KEYS = (
    "abs_err",
    "rel_err",
    "mean_angle",
    "median_angle",
    "within_11_25",
    "within_22_5",
    "within_30",
)


def _frame(root: Path, split: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    depth = np.load(root / split / "depth" / f"{index}.npy").astype(np.float32)
    normal = np.load(root / split / "normal" / f"{index}.npy").astype(np.float32)
    return torch.from_numpy(depth.reshape(depth.shape[:2])), torch.from_numpy(normal).permute(
        2, 0, 1
    )


def _count(root: Path, split: str) -> int:
    return len(list((root / split / "depth").glob("*.npy")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="NYUv2 root (train/ and val/)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--train-frames", type=int, default=64, help="frames for the constants")
    args = parser.parse_args()
    start = time.perf_counter()
    depth_sum, depth_count, normal_sum = 0.0, 0, torch.zeros(3, dtype=torch.float64)
    for index in range(min(args.train_frames, _count(args.root, "train"))):
        depth, normal = _frame(args.root, "train", index)
        valid = depth > 0
        depth_sum += float(depth[valid].double().sum())
        depth_count += int(valid.sum())
        normal_sum += normal[:, valid].double().sum(1)
    mean_depth = depth_sum / depth_count
    mean_normal = (normal_sum / normal_sum.norm()).float()

    predictors = ("constant", "noisy")
    metrics = {
        (p, b, a): (MetricDepthMetrics(average=a), SurfaceNormalMetrics(average=a))
        for p in predictors
        for b in args.batch_sizes
        for a in ("pixel", "batch")
    }
    buffers: dict[int, list] = {b: [] for b in args.batch_sizes}
    generator = torch.Generator().manual_seed(0)

    def flush(batch_size: int, items: list) -> None:
        depth = torch.stack([x[0] for x in items])
        normal = torch.stack([x[1] for x in items])
        depth_mask, normal_mask = depth > 0, (normal != 0).any(1)
        for predictor in predictors:
            if predictor == "constant":
                pred_depth = torch.full_like(depth, mean_depth)
                pred_normal = mean_normal.view(1, 3, 1, 1).expand_as(normal)
            else:
                pred_depth = torch.stack([x[2] for x in items])
                pred_normal = torch.stack([x[3] for x in items])
            for average in ("pixel", "batch"):
                depth_metric, normal_metric = metrics[(predictor, batch_size, average)]
                depth_metric.update(pred_depth, depth, depth_mask)
                normal_metric.update(pred_normal, normal, normal_mask)

    frames = _count(args.root, "val")
    for index in range(frames):
        depth, normal = _frame(args.root, "val", index)
        depth_noise = float(torch.empty(1).uniform_(0.05, 0.4, generator=generator))
        normal_noise = float(torch.empty(1).uniform_(0.1, 0.8, generator=generator))
        noisy_depth = depth * (1 + depth_noise * torch.randn(depth.shape, generator=generator))
        noisy_normal = torch.nn.functional.normalize(
            normal + normal_noise * torch.randn(normal.shape, generator=generator), dim=0
        )
        for batch_size in args.batch_sizes:
            buffers[batch_size].append((depth, normal, noisy_depth, noisy_normal))
            if len(buffers[batch_size]) == batch_size:
                flush(batch_size, buffers[batch_size])
                buffers[batch_size] = []
    for batch_size, items in buffers.items():
        if items:
            flush(batch_size, items)

    print(f"{frames} test frames of {args.root}")
    print("| predictor | batch | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for predictor in predictors:
        for batch_size in args.batch_sizes:
            values = {}
            for average in ("pixel", "batch"):
                depth_metric, normal_metric = metrics[(predictor, batch_size, average)]
                result = {**depth_metric.compute(), **normal_metric.compute()}
                values[average] = [float(result[k]) for k in KEYS]
            cells = [
                f"{p:.4f} -> {b:.4f} ({100 * (b - p) / p:+.2f} %)" if p else f"{p:.4f} -> {b:.4f}"
                for p, b in zip(values["pixel"], values["batch"], strict=True)
            ]
            print(f"| {predictor} | {batch_size} | " + " | ".join(cells) + " |")
    print(f"(pixel -> batch, relative change) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
