"""Training step rate of the Lightning module against a bare PyTorch loop, and GPU FLOP use.

Both loops train the same network (one deep copy of a freshly built ``MultiTaskModule``)
with the same loss weighting (``UncertaintyWeighting``), the same optimizer and parameter
groups (``configure_optimizers``: SGD, momentum 0.9, as in ``cityscapes_tiny.yaml``) and the
same pre-made batches already on the device, so only the framework differs. The Lightning
side is ``trainer.fit`` without logger, checkpointing, progress bar, model summary or
validation; its steps are timed from the end of the warm-up steps to the end of training.
The two alternate ``--repeats`` times and the medians are compared (goal: ratio >= 0.98).

On a GPU it also prints images/s and the share of the GPU's peak dense bf16 FLOP/s that the
training step reaches: FLOPs of one step (forward and backward, from
``torch.utils.flop_counter.FlopCounterMode``) times steps/s, over the peak from a table by
device name (``--peak-tflops`` overrides it).

Examples:
    # the paper's network: ResNet-101, output stride 8, ASPP, 3 heads, 128x256, batch 8
    python benchmarks/bench_training_step.py --paper --precision bf16-mixed --channels-last
    # a small CPU run
    python benchmarks/bench_training_step.py --backbone resnet18 --output-stride 16 \\
        --size 64 128 --batch 2 --steps 10 --warmup 3 --repeats 3
    # the CPU proxy of the host overhead: a host-bound network (three strided convolutions and
    # the three heads, 32x64, batch 1, one thread), where Python and the framework dominate;
    # prints Lightning's extra ms per step (goal <= 1 ms)
    python benchmarks/bench_training_step.py --cpu-proxy
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import logging
import statistics
import time
import warnings
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from mtlscene.callbacks.capture_step import CaptureTrainingStep, use_fused_step
from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.weighting import UncertaintyWeighting

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of the device name.
# H100 and H200 SXM share the H100 SXM figure; PCIe H100s are lower (756): use --peak-tflops.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
# "cpu" counts this process's CPU seconds: on a shared machine other processes' load then
# does not enter the figure (one thread, no loader workers: all of a step's work is ours).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


class HostBoundEncoder(torch.nn.Module):
    """Three small strided convolutions (stride 8, ``out_channels`` features): a shared
    encoder so cheap that a step's time is mostly the host's, which the CPU proxy measures."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.out_channels = out_channels
        layers: list[torch.nn.Module] = []
        channels = 3
        for _ in range(3):
            layers += [torch.nn.Conv2d(channels, out_channels, 3, 2, 1), torch.nn.ReLU()]
            channels = out_channels
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


def make_module(args: argparse.Namespace) -> MultiTaskModule:
    """The paper's three-task network with learned uncertainty weighting."""
    if args.backbone == "host-bound":
        encoder = HostBoundEncoder(args.aspp_channels)
    else:
        encoder = DeepLabEncoder(
            args.backbone, args.output_stride, aspp_channels=args.aspp_channels
        )
    tasks = {
        "semantic": {"hidden_channels": args.head_channels},
        "instance": {"hidden_channels": args.head_channels},
        "depth": {"hidden_channels": args.head_channels},
    }

    def optimizer(params):
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)

    return MultiTaskModule(encoder, tasks, UncertaintyWeighting(), optimizer=optimizer)


def make_batches(count: int, batch: int, size: tuple[int, int], device: torch.device) -> list:
    """Random batches with every target key the three heads read, already on ``device``."""
    height, width = size
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        semantic = torch.randint(0, 19, (batch, height, width), generator=generator)
        semantic[:, : height // 8] = 255  # some void pixels, as in CityScapes
        instance_mask = torch.rand(batch, height, width, generator=generator) < 0.2
        item = {
            "image": torch.rand(batch, 3, height, width, generator=generator),
            "semantic": semantic,
            "instance_offset": torch.randn(batch, 2, height, width, generator=generator) * 5,
            "instance_mask": instance_mask,
            "instance_ids": torch.where(instance_mask, 26001, 7).long(),
            "disparity": torch.rand(batch, height, width, generator=generator) * 20,
            "disparity_mask": torch.rand(batch, height, width, generator=generator) < 0.9,
        }
        batches.append({key: value.to(device) for key, value in item.items()})
    return batches


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(pl.Callback):
    """Wall time from the start of step ``warmup`` to the end of training."""

    def __init__(self, warmup: int, device: torch.device, clock: Callable[[], float]) -> None:
        self.warmup, self.device, self.clock = warmup, device, clock
        self.start = self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            _synchronize(self.device)
            self.start = self.clock()

    def on_train_end(self, trainer, pl_module) -> None:
        _synchronize(self.device)
        self.seconds = self.clock() - self.start


def lightning_rate(module, batches, args, device, callbacks=()) -> float:
    """Steps/s of ``trainer.fit`` after the warm-up steps (``callbacks`` added to the fit)."""
    timer = StepTimer(args.warmup, device, CLOCKS[args.clock])
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
        callbacks=[timer, *callbacks],
    )
    stream = list(itertools.islice(itertools.cycle(batches), args.warmup + args.steps))
    # batch_size=None hands each pre-made batch over as it is.
    trainer.fit(module, DataLoader(stream, batch_size=None))
    return args.steps / timer.seconds


def bare_step_function(
    module, args, device, compile_backend: str | None = None
) -> Callable[[dict], None]:
    """One training step in plain PyTorch over the module's network, losses and weighting.

    With ``compile_backend`` the forward pass, losses and weighting run as the module's
    ``training_objective`` compiled as ``CaptureTrainingStep`` compiles it (CUDA graphs with
    inductor's reduce-overhead), and the optimizer takes its fused step on a GPU.
    """
    network, weighting = module.network.to(device), module.weighting.to(device)
    optimizer = module.configure_optimizers()
    objective = None
    if compile_backend is not None:
        options = CaptureTrainingStep(backend=compile_backend).options
        objective = torch.compile(module.training_objective, **options)
        use_fused_step(optimizer)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16-mixed"
        else contextlib.nullcontext()
    )

    def step(batch: dict) -> None:
        with autocast:
            if objective is not None:
                total, _ = objective(batch)
            else:
                outputs = network(batch["image"])
                losses = module.task_losses(outputs, batch)
        if objective is None:
            total = weighting(losses)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def bare_rate(step, batches, args, device) -> float:
    """Steps/s of the bare loop after the warm-up steps."""
    stream = itertools.cycle(batches)
    for _ in range(args.warmup):
        step(next(stream))
    clock = CLOCKS[args.clock]
    _synchronize(device)
    start = clock()
    for _ in range(args.steps):
        step(next(stream))
    _synchronize(device)
    return args.steps / (clock() - start)


def flops_per_step(step, batch) -> int:
    """FLOPs of one training step (forward + backward; the optimizer's are negligible)."""
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return counter.get_total_flops()


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak for a CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12, f"{name}: {tflops:g} TFLOP/s dense bf16"
    return None, f"{name} is not in the peak table (pass --peak-tflops)"


def build_parser() -> argparse.ArgumentParser:
    """This benchmark's options (bench_gpu_protocol.py starts from their defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paper", action="store_true", help="ResNet-101, OS 8, 128x256, batch 8")
    parser.add_argument("--backbone", default="resnet18", help='a ResNet, or "host-bound"')
    parser.add_argument("--output-stride", type=int, default=16)
    parser.add_argument("--aspp-channels", type=int, default=256)
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--distinct-batches", type=int, default=4)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument(
        "--cpu-proxy",
        action="store_true",
        help="host-bound encoder (3 convolutions, 16 channels; heads 8), 32x64, batch 1, 1 "
        "thread, CPU clock, 200 steps x 9 repeats on the CPU",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=None, help="default: wall")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    if args.paper:
        args.backbone, args.output_stride, args.size, args.batch = "resnet101", 8, (128, 256), 8
        args.aspp_channels = args.head_channels = 256
    if args.cpu_proxy:
        # A few convolutions and narrow heads: the host's part of the step is what is timed
        # (a ResNet-18's CPU compute would bury a 1 ms difference in the shared machine's noise).
        args.backbone, args.output_stride, args.size, args.batch = "host-bound", 16, (32, 64), 1
        args.aspp_channels, args.head_channels = 16, 8
        args.device, args.threads, args.clock = "cpu", args.threads or 1, args.clock or "cpu"
        args.steps, args.repeats, args.warmup = 300, 9, 10
    args.clock = args.clock or "wall"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    lightning_module = make_module(args)
    bare_module = copy.deepcopy(lightning_module)  # same initial weights
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    for module in (lightning_module, bare_module):
        module.to(device=device, memory_format=memory_format)
    batches = make_batches(args.distinct_batches, args.batch, tuple(args.size), device)
    if args.channels_last:
        for batch in batches:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    step = bare_step_function(bare_module, args, device)

    lightning_rates, bare_rates = [], []
    for _ in range(args.repeats):  # alternate, so that drifts hit both alike
        lightning_rates.append(lightning_rate(lightning_module, batches, args, device))
        bare_rates.append(bare_rate(step, batches, args, device))
    lightning_median = statistics.median(lightning_rates)
    bare_median = statistics.median(bare_rates)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {name}, {args.backbone} OS {args.output_stride}, "
        f"{args.size[0]}x{args.size[1]}, batch {args.batch}, {args.precision}, "
        f"channels_last={args.channels_last}, {args.steps} steps x {args.repeats} repeats "
        f"timed by the {args.clock} clock "
        f"(after {args.warmup} warm-up steps), torch.get_num_threads()={torch.get_num_threads()}"
    )
    print(f"{'':<22}{'steps/s (median)':>18}{'images/s':>12}{'all repeats':>36}")
    for label, median, rates in (
        ("Lightning trainer.fit", lightning_median, lightning_rates),
        ("bare PyTorch loop", bare_median, bare_rates),
    ):
        shown = ", ".join(f"{rate:.3f}" for rate in rates)
        print(f"{label:<22}{median:>18.3f}{median * args.batch:>12.1f}{shown:>36}")
    print(f"ratio Lightning / bare: {lightning_median / bare_median:.3f} (goal >= 0.98)")
    # Paired per repeat (the two alternate), so a drift of the shared machine hits both alike.
    overheads = [1000 / lr - 1000 / br for lr, br in zip(lightning_rates, bare_rates, strict=True)]
    overhead = statistics.median(overheads)
    share = 100 * overhead * lightning_median / 1000
    paired = ", ".join(f"{o:.2f}" for o in overheads)
    print(
        f"host overhead of Lightning per step: {overhead:.2f} ms (median of the paired repeats "
        f"{paired}), {share:.1f} % of its {1000 / lightning_median:.2f} ms step "
        "(goal <= 1 ms on the CPU proxy)"
    )

    flops = flops_per_step(step, batches[0])
    achieved = flops * lightning_median
    print(
        f"FLOPs per training step: {flops / 1e9:.3f} GFLOP; Lightning reaches "
        f"{achieved / 1e12:.3f} TFLOP/s"
    )
    peak, source = peak_flops(device, args.peak_tflops)
    if peak is None:
        print(f"share of peak: n/a ({source})")
    else:
        print(f"share of peak bf16 FLOP/s: {100 * achieved / peak:.1f} % ({source})")


if __name__ == "__main__":
    main()
