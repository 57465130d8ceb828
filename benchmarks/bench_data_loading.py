"""Images/s of the training loader from full-resolution files: PNGs against the prepared cache.

Writes ``--images`` synthetic frames in the CityScapes layout at the source resolution
(CityScapes' own 1024x2048 by default) into a temporary folder, prepares the cache once
(``mtlscene-data prepare``), then times the training loader of one process (a DataLoader
with no workers, the ResumableSampler and the training augmentation: random scale, flip,
crop and colour jitter) once reading the PNGs and once reading the cache, at the working
size. Each figure is the median over ``--repeats`` passes (each pass a new epoch, so new
augmentations); a cached pass loops over the frames until it has run ``--min-seconds``.
Rates are given per wall-clock second and per CPU second of this process (with one thread
they agree on an idle machine; on a shared one only the CPU figure is undisturbed).
It also checks that both paths yield identical batches.

Example:
    python benchmarks/bench_data_loading.py --images 16 --size 128 256
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

from mtlscene.data import CityscapesMultiTask, synthetic
from mtlscene.data import cache as prepared
from mtlscene.data.sampling import ResumableSampler
from mtlscene.data.transforms import JointAugmentation


def loader(dataset: CityscapesMultiTask, batch_size: int, epoch: int) -> DataLoader:
    """The training loader of one process, at the given epoch's shuffle and augmentations."""
    sampler = ResumableSampler(dataset, shuffle=True, seed=0)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)


def images_per_second(
    dataset: CityscapesMultiTask, batch_size: int, repeats: int, min_seconds: float
) -> tuple[float, float]:
    """Medians over ``repeats`` timed passes of images loaded per wall and per CPU second."""
    wall_rates, cpu_rates = [], []
    for repeat in range(repeats):
        images, start, cpu_start = 0, time.perf_counter(), time.process_time()
        epoch = repeat * 1000
        while True:
            for batch in loader(dataset, batch_size, epoch):
                images += len(batch["name"])
            elapsed = time.perf_counter() - start
            epoch += 1
            if elapsed >= min_seconds:
                break
        wall_rates.append(images / elapsed)
        cpu_rates.append(images / (time.process_time() - cpu_start))
    return statistics.median(wall_rates), statistics.median(cpu_rates)


def identical_batches(a: CityscapesMultiTask, b: CityscapesMultiTask, batch_size: int) -> bool:
    """True when both datasets give bit-identical batches over one augmented epoch."""
    for x, y in zip(loader(a, batch_size, 7), loader(b, batch_size, 7), strict=True):
        for key, value in x.items():
            same = torch.equal(value, y[key]) if torch.is_tensor(value) else value == y[key]
            if not same:
                return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="frames to write (default 16)")
    parser.add_argument("--source", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per path")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per cached pass")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and OpenCV threads (1: like one worker)"
    )
    parser.add_argument("--root", type=Path, default=None, help="keep the data here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "cityscapes"
        height, width = args.source
        start = time.perf_counter()
        generated = "reused the frames in --root"
        if not synthetic.is_complete(root, {"train": args.images}, height, width):
            synthetic.generate_dataset(root, {"train": args.images}, height, width, progress=False)
            generated = f"generating the frames took {time.perf_counter() - start:.0f} s"
        start = time.perf_counter()
        folder = prepared.build_split_cache(root, "train", args.size, progress=False)
        prepare_s = time.perf_counter() - start

        augmentation = JointAugmentation(args.size, (0.75, 1.25), 0.5, 0.2)
        files = CityscapesMultiTask(root, "train", args.size, augmentation=augmentation)
        cached = CityscapesMultiTask(
            root, "train", args.size, augmentation=augmentation, cache=prepared.SplitCache(folder)
        )
        same = identical_batches(files, cached, args.batch_size)
        uncached = images_per_second(files, args.batch_size, args.repeats, 0.0)
        cached_rates = images_per_second(cached, args.batch_size, args.repeats, args.min_seconds)
        cache_mib = sum(f.stat().st_size for f in folder.iterdir()) / 2**20

    h, w = args.size
    print(
        f"{args.images} frames of {height}x{width} -> {h}x{w}, one process "
        f"({args.threads} thread), batch {args.batch_size}, augmentation on "
        f"(scale 0.75-1.25, flip, crop, colour jitter); median of {args.repeats} passes\n"
    )
    print("| path | images/s (wall clock) | images per CPU second |")
    print("|---|---|---|")
    print(f"| uncached (decode PNGs, check, resize) | {uncached[0]:.1f} | {uncached[1]:.1f} |")
    print(f"| cached (`mtlscene-data prepare`) | {cached_rates[0]:.1f} | {cached_rates[1]:.1f} |")
    ratios = [c / u for c, u in zip(cached_rates, uncached, strict=True)]
    print(f"| ratio cached / uncached | {ratios[0]:.0f}x | {ratios[1]:.0f}x |")
    print(
        f"\nidentical batches: {'yes' if same else 'NO'}; one-off prepare: {prepare_s:.1f} s "
        f"({args.images / prepare_s:.1f} frames/s), cache {cache_mib:.1f} MiB; "
        f"{generated}. CPU seconds count this process only, "
        "so they are the fairer figure on a busy machine."
    )


if __name__ == "__main__":
    main()
