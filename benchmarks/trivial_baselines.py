"""Metrics of trivial predictors on a CityScapes-format split, to judge what a model learned.

Baselines (the yardstick README's quick-start numbers are compared with):
- semantic: the training split's most frequent class everywhere;
- depth: the training split's mean valid disparity everywhere;
- instance: zero vectors (every pixel is its own centroid).

    python benchmarks/trivial_baselines.py data/synthetic_cityscapes --size 128 256
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mtlscene.data.cityscapes.dataset import CityscapesMultiTask  # noqa: E402
from mtlscene.data.cityscapes.labels import IGNORE_INDEX, class_names  # noqa: E402
from mtlscene.metrics import DisparityMetrics, OffsetError, SemanticSegmentationMetrics  # noqa: E402


def training_statistics(dataset: CityscapesMultiTask, num_classes: int) -> tuple[int, float]:
    """Most frequent class and mean valid disparity of a split."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    disparity_sum, disparity_count = 0.0, 0
    for index in tqdm(range(len(dataset)), desc="train statistics"):
        item = dataset[index]
        labels = item["semantic"][item["semantic"] != IGNORE_INDEX]
        counts += torch.bincount(labels, minlength=num_classes)
        disparity_sum += float(item["disparity"][item["disparity_mask"]].sum())
        disparity_count += int(item["disparity_mask"].sum())
    return int(counts.argmax()), disparity_sum / max(disparity_count, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="CityScapes-format dataset root")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--split", default="val", help="split to evaluate on (default val)")
    parser.add_argument("--label-set", default="trainid", choices=("trainid", "category"))
    args = parser.parse_args(argv)

    names = class_names(args.label_set)
    train = CityscapesMultiTask(args.root, "train", args.size, args.label_set)
    majority, mean_disparity = training_statistics(train, len(names))
    semantic = SemanticSegmentationMetrics(len(names), IGNORE_INDEX, names)
    depth, offsets = DisparityMetrics(), OffsetError()
    evaluation = CityscapesMultiTask(args.root, args.split, args.size, args.label_set)
    for index in tqdm(range(len(evaluation)), desc=f"{args.split} baselines"):
        item = evaluation[index]
        target = item["semantic"][None]
        semantic.update(torch.full_like(target, majority), target)
        disparity = item["disparity"][None]
        depth.update(
            torch.full_like(disparity, mean_disparity), disparity, item["disparity_mask"][None]
        )
        vectors = item["instance_offset"][None]
        offsets.update(torch.zeros_like(vectors), vectors, item["instance_mask"][None])
    sem, dep, off = semantic.compute(), depth.compute(), offsets.compute()
    print(f"Trivial baselines on {args.root} [{args.split}] at {args.size[0]}x{args.size[1]}")
    print(
        f"  semantic, always '{names[majority]}': mIoU {float(sem['miou']):.4f}, "
        f"pixel accuracy {float(sem['pixel_accuracy']):.4f}"
    )
    print(
        f"  depth, always the mean disparity {mean_disparity:.3f} px: "
        f"MAE {float(dep['mae']):.4f} px, RMSE {float(dep['rmse']):.4f} px"
    )
    print(f"  instance, zero vectors: mean error {float(off['mae']):.4f} px")


if __name__ == "__main__":
    main()
