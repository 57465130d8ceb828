"""Cost of the GradientDiagnostics (or TaskAffinity) callback: training time with it and without.

``--callback affinity`` times :class:`~mtlscene.callbacks.task_affinity.TaskAffinity`
instead (T + 1 forwards and T backwards per measurement).

Builds the quickstart network (the model of ``configs/quickstart.yaml``, learned
uncertainty weighting, so the callback pays one backward per task on its steps) and trains
it with ``trainer.fit`` for ``--warmup`` + ``--steps`` steps on the same pre-made batches:
without the callback, and with it every N steps for each ``--every`` N. Every repeat runs
each variant once, in a shuffled order, from the same initial weights; each variant's
timed steps (after the warm-up) are divided by the plain run's of the same repeat, and the
median of these paired ratios is the overhead (goal: <= 5 % at N = 50). Since a measured
step is rare, the callback's cost per measurement is also read from the per-step times (a
measured step minus the median unmeasured one, within the same runs), which gives the
overhead at any N as ``cost / (N * plain step)`` with far less noise.

    python benchmarks/bench_gradient_diagnostics.py --steps 50 --repeats 3
    python benchmarks/bench_gradient_diagnostics.py --callback affinity --threads 1
    python benchmarks/bench_gradient_diagnostics.py --device cuda --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training_step import make_batches  # noqa: E402

from mtlscene.callbacks.gradient_diagnostics import GradientDiagnostics  # noqa: E402
from mtlscene.callbacks.task_affinity import TaskAffinity  # noqa: E402
from mtlscene.cli.main import build_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALLBACKS = {"gradients": GradientDiagnostics, "affinity": TaskAffinity}


class PerStepTimer(pl.Callback):
    """Wall time of every training step (synchronised on a GPU), by global step."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[int, float] = {}
        self._start = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        self.seconds[trainer.global_step - 1] = time.perf_counter() - self._start


def quickstart_module(args: argparse.Namespace):
    """The quickstart config's model (its network, weighting, optimizer)."""
    cli = build_cli(
        [
            "--config",
            str(ROOT / "configs" / "quickstart.yaml"),
            *(["--config", str(Path(args.weighting).resolve())] if args.weighting else []),
            "--trainer.logger",
            "false",
        ],
        run=False,
    )
    return cli.model


def timed_fit(module, batches, every: int | None, args, device) -> dict[int, float]:
    """Per-step seconds of one ``trainer.fit`` (the callback every ``every`` steps, or none)."""
    timer = PerStepTimer(device)
    callbacks: list[pl.Callback] = [timer]
    if every is not None:
        callbacks.append(CALLBACKS[args.callback](every_n_steps=every))
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=args.out,
    )
    stream = list(itertools.islice(itertools.cycle(batches), args.warmup + args.steps))
    trainer.fit(module, DataLoader(stream, batch_size=None))  # batches handed over as they are
    return {step: s for step, s in timer.seconds.items() if step >= args.warmup}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callback", choices=sorted(CALLBACKS), default="gradients")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=int, nargs="+", default=[50, 10], help="values of N")
    parser.add_argument("--distinct-batches", type=int, default=4)
    parser.add_argument("--weighting", default=None, help="a weighting preset (default: UW)")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="runs/bench_gradient_diagnostics")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 steadies a busy machine)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("mtlscene").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    initial = quickstart_module(args)
    batches = make_batches(args.distinct_batches, args.batch, tuple(args.size), device)
    variants: list[int | None] = [None, *args.every]
    times: dict[int | None, list[dict[int, float]]] = {v: [] for v in variants}
    start = time.perf_counter()
    for repeat in range(args.repeats):
        order = list(variants)
        random.Random(repeat).shuffle(order)  # drifts of a shared machine hit all alike
        for every in order:
            module = copy.deepcopy(initial).to(device)
            times[every].append(timed_fit(module, batches, every, args, device))
    wall = time.perf_counter() - start

    def total(run: dict[int, float]) -> float:
        return sum(run.values())

    plain_step = statistics.median(s for run in times[None] for s in run.values())
    print(
        f"{CALLBACKS[args.callback].__name__} on "
        f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, "
        f"quickstart network (resnet18 OS16, ASPP 128, heads 64), "
        f"{initial.weighting.__class__.__name__}, {args.size[0]}x{args.size[1]}, batch "
        f"{args.batch}, {args.precision}, {args.steps} timed steps x {args.repeats} repeats "
        f"(after {args.warmup} warm-up), torch threads {torch.get_num_threads()}, "
        f"wall {wall:.0f} s"
    )
    print(f"plain step (median): {1000 * plain_step:.1f} ms")
    print("| N | measured steps per run | time ratio with / without (median of paired) "
          "| cost per measurement (ms) | overhead from per-step cost |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for every in args.every:
        ratios = [
            total(run) / total(plain) for run, plain in zip(times[every], times[None], strict=True)
        ]
        measured = [s for run in times[every] for step, s in run.items() if step % every == 0]
        others = [s for run in times[every] for step, s in run.items() if step % every != 0]
        cost = statistics.median(measured) - statistics.median(others) if measured else 0.0
        print(
            f"| {every} | {len(measured) // args.repeats} | {statistics.median(ratios):.3f} "
            f"({', '.join(f'{r:.3f}' for r in ratios)}) | {1000 * cost:.1f} | "
            f"{100 * cost / (every * plain_step):.1f} % |"
        )
    unmeasured = [
        s for every in args.every for run in times[every] for t, s in run.items() if t % every
    ]
    print(
        f"unmeasured steps with the callback / plain steps (medians): "
        f"{statistics.median(unmeasured) / plain_step:.3f}"
    )


if __name__ == "__main__":
    main()
