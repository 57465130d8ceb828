"""Time of panoptic fusion and of the panoptic-quality update on a batch, CPU or GPU.

Scenes come from ``bench_clustering.make_scenes`` (occluding thing instances on road); the
semantic map and instance map are their ground truth with class noise, so every stage does
realistic work. Prints milliseconds per batch for fusion and for the PQ update.

Example:
    python benchmarks/bench_panoptic.py --images 8 --height 128 --width 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_clustering import make_scenes

from mtlscene.metrics import CityscapesPanopticQuality
from mtlscene.postprocess import PanopticFusion


def _time(fn: Callable[[], object], runs: int, device: str) -> float:
    """Median milliseconds of ``fn`` over ``runs`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per batch")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--instances", type=int, default=12, help="instances per image")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    ids, semantic, _ = make_scenes(args.images, args.height, args.width, args.instances, 0)
    ids, semantic = ids.to(args.device), semantic.to(args.device)
    instance_map = torch.where(ids >= 1000, ids % 1000 + 1, 0)
    # 2 % of the pixels get a random class: small stray segments, outvoted instance pixels.
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(semantic.shape, generator=generator) < 0.02
    random_class = torch.randint(0, 19, semantic.shape, generator=generator)
    semantic = torch.where(noise, random_class, semantic.cpu()).to(args.device)
    fusion = PanopticFusion().to(args.device)
    metric = CityscapesPanopticQuality().to(args.device)
    fused = fusion(semantic, instance_map)
    fusion_ms = _time(lambda: fusion(semantic, instance_map), args.runs, args.device)
    update_ms = _time(
        lambda: metric.update(fused["category"], fused["instance"], ids), args.runs, args.device
    )
    print(
        f"{args.images} images of {args.height}x{args.width} on {args.device}: "
        f"fusion {fusion_ms:.1f} ms/batch, PQ update {update_ms:.1f} ms/batch, "
        f"PQ {float(metric.compute()['pq']):.3f}"
    )


if __name__ == "__main__":
    main()
