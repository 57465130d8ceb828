"""Metrics of trivial predictors on an NYUv2 root (mtan layout), to judge what a model learned.

Baselines (the yardstick the NYUv2 quick-start numbers are compared with), all computed
from the training split and scored on the test split ("val" in the mtan files) with the
project's own metric classes:
- semantic: the most frequent training class everywhere (mIoU, pixel accuracy);
- depth: the mean valid training depth everywhere, and the median (the best constant
  under the L1 loss the depth head trains with) (abs and rel error);
- normals: the mean valid training normal, normalised, everywhere (mean and median angle,
  shares within 11.25, 22.5 and 30 degrees).

    python benchmarks/trivial_baselines_nyuv2.py data/synthetic_nyuv2
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mtlscene.data.cityscapes.labels import IGNORE_INDEX  # noqa: E402
from mtlscene.data.nyuv2.dataset import NYUv2Dataset  # noqa: E402
from mtlscene.data.nyuv2.layout import NYUV2_CLASS_NAMES, NYUV2_NUM_CLASSES  # noqa: E402
from mtlscene.metrics import (  # noqa: E402
    MetricDepthMetrics,
    SemanticSegmentationMetrics,
    SurfaceNormalMetrics,
)

DEPTH_BIN = 0.001
"""Metres per bin of the histogram the median training depth is read from."""


def training_statistics(dataset: NYUv2Dataset) -> dict:
    """Most frequent class, mean and median valid depth, and normalised mean normal."""
    counts = torch.zeros(NYUV2_NUM_CLASSES, dtype=torch.long)
    depth_sum, depth_count = 0.0, 0
    depth_histogram = np.zeros(1, np.int64)
    normal_sum = torch.zeros(3, dtype=torch.float64)
    for index in tqdm(range(len(dataset)), desc="train statistics"):
        item = dataset[index]
        labels = item["semantic"][item["semantic"] != IGNORE_INDEX]
        counts += torch.bincount(labels, minlength=NYUV2_NUM_CLASSES)
        depth = item["depth"][item["depth_mask"]].double()
        depth_sum += float(depth.sum())
        depth_count += depth.numel()
        bins = np.bincount((depth.numpy() / DEPTH_BIN).astype(np.int64))
        if len(bins) > len(depth_histogram):
            depth_histogram = np.pad(depth_histogram, (0, len(bins) - len(depth_histogram)))
        depth_histogram[: len(bins)] += bins
        normal_sum += item["normal"].double().sum(dim=(1, 2))
    cumulative = np.cumsum(depth_histogram)
    median_bin = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    return {
        "majority": int(counts.argmax()),
        "mean_depth": depth_sum / max(depth_count, 1),
        "median_depth": (median_bin + 0.5) * DEPTH_BIN,
        "mean_normal": (normal_sum / normal_sum.norm()).float(),
    }


def evaluate(dataset: NYUv2Dataset, stats: dict) -> dict[str, dict[str, float]]:
    """Every baseline's metrics over a split."""
    semantic = SemanticSegmentationMetrics(NYUV2_NUM_CLASSES, IGNORE_INDEX, NYUV2_CLASS_NAMES)
    mean_depth, median_depth = MetricDepthMetrics(), MetricDepthMetrics()
    normal = SurfaceNormalMetrics()
    for index in tqdm(range(len(dataset)), desc=f"{dataset.split} baselines"):
        item = dataset[index]
        target = item["semantic"][None]
        semantic.update(torch.full_like(target, stats["majority"]), target)
        depth, depth_mask = item["depth"][None], item["depth_mask"][None]
        mean_depth.update(torch.full_like(depth, stats["mean_depth"]), depth, depth_mask)
        median_depth.update(torch.full_like(depth, stats["median_depth"]), depth, depth_mask)
        target_normal = item["normal"][None]
        constant = stats["mean_normal"][None, :, None, None].expand_as(target_normal)
        normal.update(constant, target_normal, item["normal_mask"][None])
    return {
        "semantic": {k: float(v) for k, v in semantic.compute().items() if v.ndim == 0},
        "mean_depth": {k: float(v) for k, v in mean_depth.compute().items()},
        "median_depth": {k: float(v) for k, v in median_depth.compute().items()},
        "normal": {k: float(v) for k, v in normal.compute().items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="NYUv2 root (mtan layout: train/ and val/)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="working size"
    )
    parser.add_argument("--split", default="val", help="split to score (default val, the test)")
    args = parser.parse_args(argv)

    stats = training_statistics(NYUv2Dataset(args.root, "train", args.size))
    evaluation = NYUv2Dataset(args.root, args.split, args.size)
    scores = evaluate(evaluation, stats)
    shape = "x".join(str(s) for s in evaluation.load(0)["image"].shape[-2:])
    sem, nor = scores["semantic"], scores["normal"]
    print(f"Trivial baselines on {args.root} [{args.split}, {len(evaluation)} images] at {shape}")
    print(
        f"  semantic, always '{NYUV2_CLASS_NAMES[stats['majority']]}': "
        f"mIoU {sem['miou'] * 100:.2f} %, pixel accuracy {sem['pixel_accuracy'] * 100:.2f} %"
    )
    for name in ("mean", "median"):
        dep = scores[f"{name}_depth"]
        print(
            f"  depth, always the {name} training depth {stats[f'{name}_depth']:.3f} m: "
            f"abs err {dep['abs_err']:.4f} m, rel err {dep['rel_err']:.4f}"
        )
    n = ", ".join(f"{v:.3f}" for v in stats["mean_normal"].tolist())
    print(
        f"  normal, always the mean training normal ({n}): mean {nor['mean_angle']:.2f} deg, "
        f"median {nor['median_angle']:.2f} deg, within 11.25/22.5/30 deg "
        f"{nor['within_11_25'] * 100:.2f} / {nor['within_22_5'] * 100:.2f} / "
        f"{nor['within_30'] * 100:.2f} %"
    )


if __name__ == "__main__":
    main()
