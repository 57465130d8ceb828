"""Images/s of the training loader from full-resolution files: PNGs against the prepared cache,
augmentation in the loader (host) against augmentation on the device.

Writes ``--images`` synthetic frames in the CityScapes layout at the source resolution
(CityScapes' own 1024x2048 by default) into a temporary folder (or reuses them in
``--root``), prepares the cache once (``mtlscene-data prepare``), then times the training
loader of one process (a DataLoader with no workers, the ResumableSampler) at the working
size, four ways:

- host path (the default): the loader decodes, augments (albumentations: random scale,
  flip, crop, colour jitter) and encodes the targets, reading the PNGs or the cache;
- device path (``data.augment_on_device``): the loader only reads frames and draws their
  parameters; :class:`~mtlscene.data.cityscapes.device_augment.DeviceAugmentation` then augments and
  encodes each batch on ``--device``, and its cost is counted in (on a CPU all of it; on a
  GPU the CPU time it takes to launch the work, waited for at the end of each pass).

A row "workers only" leaves the device's work out: the loader's own cost, which bounds the
device path when the augmentation runs on a GPU. Each figure is the median over
``--repeats`` passes (each pass a new epoch, so new augmentations); a cached pass loops over
the frames until it has run ``--min-seconds``. Rates are given per wall-clock second and per
CPU second of this process (with one thread they agree on an idle machine; on a shared one
only the CPU figure is undisturbed). It also checks that the cached and uncached loaders
yield identical batches, on both paths, and counts the torch operations the device path
dispatches per batch (each one a kernel launch on a GPU).

Example:
    python benchmarks/bench_data_loading.py --images 16 --size 128 256
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader

from mtlscene.data import CityscapesMultiTask
from mtlscene.data.cityscapes import cache as prepared
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.device_augment import DeviceAugmentation
from mtlscene.data.cityscapes.transforms import JointAugmentation
from mtlscene.data.sampling import ResumableSampler

CPU = torch.device("cpu")
AUGMENTATION = {"scale_range": (0.75, 1.25), "hflip_prob": 0.5, "color_jitter": 0.2}


def loader(dataset: CityscapesMultiTask, batch_size: int, epoch: int) -> DataLoader:
    """The training loader of one process, at the given epoch's shuffle and augmentations."""
    sampler = ResumableSampler(dataset, shuffle=True, seed=0)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)


def on_device(batch: dict, device: torch.device) -> dict:
    """The batch moved to ``device``, as Lightning's transfer does before the hook."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def images_per_second(
    dataset: CityscapesMultiTask,
    batch_size: int,
    repeats: int,
    min_seconds: float,
    finish: Callable[[dict], dict] | None = None,
    device: torch.device = CPU,
) -> tuple[float, float]:
    """Medians over ``repeats`` timed passes of images loaded per wall and per CPU second.

    ``finish`` (the device augmentation) runs on every batch moved to ``device``; a GPU is
    waited for at the end of each pass, so its work is inside the wall-clock figure.
    """
    wall_rates, cpu_rates = [], []
    for repeat in range(repeats):
        images, start, cpu_start = 0, time.perf_counter(), time.process_time()
        epoch = repeat * 1000
        while True:
            for batch in loader(dataset, batch_size, epoch):
                if finish is not None:
                    finish(on_device(batch, device))
                images += len(batch["name"])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
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


class _OpCounter(TorchDispatchMode):
    """Counts the torch operations dispatched (views included)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def device_cost(
    augmentation: DeviceAugmentation, batch: dict, device: torch.device, repeats: int = 20
) -> tuple[float, float, int]:
    """(CPU ms, wall ms) per batch of the device augmentation alone, and its op count."""
    batch = on_device(batch, device)
    augmentation(dict(batch))
    with _OpCounter() as counter:
        augmentation(dict(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        augmentation(dict(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = (time.perf_counter() - start) / repeats * 1e3
    cpu = (time.process_time() - cpu_start) / repeats * 1e3
    return cpu, wall, sum(counter.counts.values())


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
    parser.add_argument(
        "--device", default="cpu", help="where the device path augments (cpu, cuda, ...)"
    )
    parser.add_argument("--root", type=Path, default=None, help="keep the data here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device(args.device)

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
        cache = prepared.SplitCache(folder)
        cache_mib = sum(f.stat().st_size for f in folder.iterdir()) / 2**20

        host = JointAugmentation(args.size, **AUGMENTATION)
        moved = DeviceAugmentation(args.size, **AUGMENTATION)
        datasets = {
            (path, where): CityscapesMultiTask(
                root,
                "train",
                args.size,
                augmentation=host if where == "host" else None,
                device_augmentation=moved if where == "device" else None,
                cache=cache if path == "cached" else None,
            )
            for path in ("uncached", "cached")
            for where in ("host", "device")
        }
        same = {
            where: identical_batches(
                datasets["uncached", where], datasets["cached", where], args.batch_size
            )
            for where in ("host", "device")
        }
        rates = {}
        for (path, where), dataset in datasets.items():
            seconds = args.min_seconds if path == "cached" else 0.0
            finish = moved if where == "device" else None
            rates[path, where] = images_per_second(
                dataset, args.batch_size, args.repeats, seconds, finish, device
            )
        rates["cached", "workers"] = images_per_second(
            datasets["cached", "device"], args.batch_size, args.repeats, args.min_seconds
        )
        sample = next(iter(loader(datasets["cached", "device"], args.batch_size, 0)))
        cost = device_cost(moved, sample, device)
        # The part of that cost that does not grow with the frame: the same ops on 8x16.
        tiny = DeviceAugmentation((8, 16), **AUGMENTATION)
        small = {**sample, "raw_image": sample["raw_image"][:, :8, :16].contiguous()}
        small["raw_targets"] = sample["raw_targets"][:, :, :8, :16].contiguous()
        draws = [tiny.draw(np.random.default_rng(i), (8, 16)) for i in range(len(sample["name"]))]
        small["augment"] = torch.from_numpy(np.stack([draw.vector() for draw in draws]))
        fixed = device_cost(tiny, small, device)

    h, w = args.size
    print(
        f"{args.images} frames of {height}x{width} -> {h}x{w}, one process "
        f"({args.threads} thread), batch {args.batch_size}, augmentation on (scale 0.75-1.25, "
        f"flip, crop, colour jitter), device path on {device}; median of {args.repeats} "
        "passes\n"
    )
    print("| path | host: augment in the loader | device: loader reads, device augments |")
    print("|---|---|---|")
    for path, label in (
        ("uncached", "uncached (decode PNGs, check, resize)"),
        ("cached", "cached (`mtlscene-data prepare`)"),
    ):
        cells = [
            f"{rates[path, where][0]:.1f} img/s, **{rates[path, where][1]:.1f}** img/CPU-s"
            for where in ("host", "device")
        ]
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    workers = rates["cached", "workers"]
    print(
        f"| cached, workers only (device's work left out) | | {workers[0]:.1f} img/s, "
        f"**{workers[1]:.1f}** img/CPU-s |"
    )
    print("\n| ratio (images per CPU second) | value |\n|---|---|")
    host_cached = rates["cached", "host"][1]
    print(f"| cached / uncached, host path | {host_cached / rates['uncached', 'host'][1]:.0f}x |")
    print(f"| device / host path, cached | {rates['cached', 'device'][1] / host_cached:.2f}x |")
    print(
        f"| device / host path, uncached | "
        f"{rates['uncached', 'device'][1] / rates['uncached', 'host'][1]:.2f}x |"
    )
    print(f"| workers only / host path, cached | {workers[1] / host_cached:.2f}x |")
    print(
        f"\ndevice augmentation alone on {device}: {cost[0]:.2f} ms CPU ({cost[1]:.2f} ms wall) "
        f"per batch of {args.batch_size} at {h}x{w}, {cost[2]} torch operations dispatched; "
        f"the same operations on 8x16 frames (the per-batch part that does not grow with "
        f"the frame): {fixed[0]:.2f} ms CPU."
    )
    print(
        f"identical batches, cached and uncached: host path {'yes' if same['host'] else 'NO'}, "
        f"device path {'yes' if same['device'] else 'NO'}; one-off prepare: {prepare_s:.1f} s "
        f"({args.images / prepare_s:.1f} frames/s), cache {cache_mib:.1f} MiB; "
        f"{generated}. CPU seconds count this process only, "
        "so they are the fairer figure on a busy machine."
    )


if __name__ == "__main__":
    main()
