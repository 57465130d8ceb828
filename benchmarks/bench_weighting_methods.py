"""Training-step time of every weighting method relative to equal weighting, side by side.

Builds the same network (same seed, so the same initial weights) once per method from its
preset in configs/weighting/, then times full training steps (forward, weighting, backward,
optimizer step) on the same fixed batches. Every round runs one step of each method, in a
shuffled order, and each method's time is divided by equal weighting's in the same round:
the table shows the median step time and the median of these paired ratios, so slow drifts
of a shared machine cancel. For loss-based methods it also times the weighting alone
(combine and its backward on scalar losses), the part that differs between them.

With ``--rep-grad`` every gradient method also runs with ``rep_grad: true`` (task gradients
at the shared representation, see docs/weighting.md), and a second table puts its
parameter- and representation-level step times side by side, as ratios to ``--baseline``:

    python benchmarks/bench_weighting_methods.py --size 64 128 --batch-size 2 --steps 20
    python benchmarks/bench_weighting_methods.py --methods mgda pcgrad upgrad imtl_g \
        --rep-grad --baseline uncertainty
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

from mtlscene.cli.main import build_cli  # noqa: E402
from mtlscene.weighting import WEIGHTING_METHODS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET_NAMES = {name: name for name in WEIGHTING_METHODS} | {"fixed": "approx_optimal"}


REP = " (rep)"  # label suffix of a method's rep_grad variant


def build(method: str, args: argparse.Namespace, extra: tuple[str, ...] = ()):
    """The tiny test network with this method's preset (plus ``extra`` options), and its
    optimizer."""
    cli = build_cli(
        [
            "--config",
            str(ROOT / "tests" / "conf" / "tiny.yaml"),
            "--config",
            str(ROOT / "configs" / "weighting" / f"{PRESET_NAMES[method]}.yaml"),
            "--data.root",
            args.data,
            "--data.size",
            f"[{args.size[0]}, {args.size[1]}]",
            "--data.batch_size",
            str(args.batch_size),
            "--data.synthetic_images",
            f"{{train: {args.batch_size * args.batches}, val: 2, test: 2}}",
            "--trainer.logger",
            "false",
            *extra,
        ],
        run=False,
    )
    model = cli.model.train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    return cli, model, optimizer


def step(model, optimizer, batch, index: int) -> None:
    optimizer.zero_grad(set_to_none=True)
    # The step's work without Lightning's logging, where the module separates the two.
    objective = getattr(model, "training_objective", None)
    loss = objective(batch)[0] if objective is not None else model.training_step(batch, index)
    loss.backward()
    optimizer.step()


def weighting_alone(model, repeats: int = 200) -> float:
    """Median microseconds of the weighting's combine plus its backward on scalar losses."""
    samples = []
    for _ in range(repeats):
        losses = {name: torch.rand((), requires_grad=True) + 0.5 for name in model.heads}
        start = time.perf_counter()
        model.weighting(losses).backward()
        samples.append(time.perf_counter() - start)
    return 1e6 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches, reused")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", default="data/bench_weighting")
    parser.add_argument("--methods", nargs="*", default=None, help="short names (default all)")
    parser.add_argument(
        "--rep-grad", action="store_true", help="also run each gradient method with rep_grad"
    )
    parser.add_argument("--baseline", default="equal", help="short name the ratios divide by")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # self.log without a Trainer warns once per key

    methods = args.methods or list(WEIGHTING_METHODS)
    if args.baseline not in methods:
        methods = [args.baseline, *methods]
    runs, skipped = {}, {}
    for method in methods:
        try:
            runs[method] = build(method, args)
        except Exception as error:  # noqa: BLE001 - a missing optional solver skips the row
            lines = [line.strip() for line in str(error).splitlines()]
            skipped[method] = next((line for line in lines if "needs" in line), lines[-1])[:100]
            continue
        if args.rep_grad and hasattr(runs[method][1].weighting, "rep_grad"):
            option = ("--model.weighting.init_args.rep_grad", "true")
            runs[method + REP] = build(method, args, option)
    cli = runs[args.baseline][0]
    cli.datamodule.prepare_data()  # writes the synthetic data when missing
    cli.datamodule.setup("fit")
    loader = iter(cli.datamodule.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]
    times: dict[str, list[float]] = {method: [] for method in runs}
    order = list(runs)
    for index in range(args.warmup + args.steps):
        batch = batches[index % len(batches)]
        random.Random(index).shuffle(order)
        for method in order:
            _, model, optimizer = runs[method]
            start = time.perf_counter()
            step(model, optimizer, batch, index)
            if index >= args.warmup:
                times[method].append(time.perf_counter() - start)
    print(
        f"Training step, {args.size[0]}x{args.size[1]}, batch {args.batch_size}, "
        f"resnet18 DeepLab (tests/conf/tiny.yaml), {args.steps} steps per method, "
        f"torch threads {torch.get_num_threads()}"
    )
    base = args.baseline

    def ratio(method: str) -> float:
        return statistics.median(t / b for t, b in zip(times[method], times[base], strict=True))

    def median_ms(method: str) -> float:
        return 1000 * statistics.median(times[method])

    print(f"| method | median step (ms) | vs {base} (median paired ratio) | weighting alone (us) |")
    print("|---|---:|---:|---:|")
    for method, (_, model, _) in runs.items():
        alone = "" if model.weighting.requires_gradients else f"{weighting_alone(model):.0f}"
        print(f"| {method} | {median_ms(method):.1f} | {ratio(method):.3f} | {alone} |")
    for method, reason in skipped.items():
        print(f"| {method} | not run: {reason} | | |")
    if args.rep_grad:
        print(f"\nTask gradients at the shared parameters vs at the representation (x {base}):")
        print(f"| method | parameters (ms) | vs {base} | representation (ms) | vs {base} |")
        print("|---|---:|---:|---:|---:|")
        for method in [m for m in runs if m + REP in runs]:
            rep = method + REP
            print(
                f"| {method} | {median_ms(method):.1f} | {ratio(method):.2f}x | "
                f"{median_ms(rep):.1f} | {ratio(rep):.2f}x |"
            )


if __name__ == "__main__":
    main()
