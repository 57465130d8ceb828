"""The paper's protocol on one GPU in one call: step rates, peak share, packing, loader, rep-grad.

One script for one lent GPU (about 6 minutes on an H200), printing one Markdown report and
writing it, with every part's raw output, under ``--out``:

1. The paper's network (ResNet-101, output stride 8, ASPP, three heads) at 128x256, batch 8,
   bf16, channels-last: Lightning ``trainer.fit`` and the bare PyTorch loop, each eager and
   with the step captured (``CaptureTrainingStep``: forward, losses and weighting as one
   compiled graph and its backward, CUDA-graphed by ``mode="reduce-overhead"``, fused
   optimizer step; the bare loop compiles the same ``training_objective``). Steps/s,
   images/s, Lightning / bare and the share of the bf16 peak. ``--large`` adds 512x1024.
2. K runs per GPU for K = 1, 2, 4, 8: K processes of the bare eager loop on the same device,
   timed over the same window; the aggregate images/s and its ratio to K = 1.
3. The loader: ``benchmarks/bench_data_loading.py`` (images per CPU second, host-side
   against device-side augmentation).
4. Representation-level gradients: ``benchmarks/bench_weighting_methods.py --rep-grad``
   (MGDA, PCGrad, UPGrad, IMTL-G as ratios to a plain uncertainty-weighted step).

Examples:
    python benchmarks/bench_gpu_protocol.py --out "$OUT"      # on the GPU
    python benchmarks/bench_gpu_protocol.py --smoke --out /tmp/smoke   # tiny, on a CPU
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_training_step as steps  # noqa: E402

from mtlscene.callbacks import CaptureTrainingStep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def settings(args: argparse.Namespace, size: tuple[int, int]) -> argparse.Namespace:
    """bench_training_step's options for the paper network (or the smoke network) at ``size``."""
    parsed = steps.build_parser().parse_args([])
    if args.smoke:
        parsed.backbone, parsed.output_stride, parsed.batch = "resnet18", 16, 1
        parsed.aspp_channels, parsed.head_channels = 16, 8
        parsed.steps, parsed.warmup, parsed.repeats = 2, 1, 1
    else:
        parsed.backbone, parsed.output_stride, parsed.batch = "resnet101", 8, 8
        parsed.aspp_channels = parsed.head_channels = 256
        parsed.steps, parsed.warmup, parsed.repeats = args.steps, 10, 1
    parsed.size = size
    parsed.device = args.device
    parsed.precision = "bf16-mixed" if args.device == "cuda" else "32-true"
    parsed.channels_last = args.device == "cuda"
    parsed.clock = "wall"
    return parsed


def step_rates(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, float]:
    """Steps/s of Lightning and the bare loop, eager and captured, and FLOPs per step."""
    options = settings(args, size)
    device = torch.device(args.device)
    torch.manual_seed(0)
    module = steps.make_module(options)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    module.to(device=device, memory_format=memory_format)
    batches = steps.make_batches(options.distinct_batches, options.batch, size, device)
    if options.channels_last:
        for batch in batches:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    backend = "aot_eager" if args.smoke else "inductor"
    rates: dict[str, float] = {}
    for captured in (False, True):
        label = "captured" if captured else "eager"
        lightning_module, bare_module = copy.deepcopy(module), copy.deepcopy(module)
        callbacks = [CaptureTrainingStep(backend=backend)] if captured else []
        rates[f"lightning {label}"] = steps.lightning_rate(
            lightning_module, batches, options, device, callbacks=callbacks
        )
        step = steps.bare_step_function(
            bare_module, options, device, compile_backend=backend if captured else None
        )
        rates[f"bare {label}"] = steps.bare_rate(step, batches, options, device)
    rates["flops"] = steps.flops_per_step(
        steps.bare_step_function(module, options, device), batches[0]
    )
    return rates


def worker(args: argparse.Namespace) -> None:
    """One packed run: the bare eager loop from ``--start-at`` for ``--seconds``; prints img/s."""
    options = settings(args, tuple(args.size))
    device = torch.device(args.device)
    torch.manual_seed(0)
    module = steps.make_module(options)
    module.to(device=device)
    batches = steps.make_batches(options.distinct_batches, options.batch, tuple(args.size), device)
    step = steps.bare_step_function(module, options, device)
    for batch in batches[:2]:  # warm-up (cuDNN autotuning, allocator) before the window
        step(batch)
    steps._synchronize(device)
    while time.time() < args.start_at:
        time.sleep(0.01)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        step(batches[done % len(batches)])
        done += 1
    steps._synchronize(device)
    print(f"IMAGES_PER_SECOND {done * options.batch / (time.perf_counter() - start):.3f}")


def packed_rates(args: argparse.Namespace, counts: list[int]) -> dict[int, float]:
    """Aggregate images/s of K concurrent bare-loop processes on one device, per K."""
    totals: dict[int, float] = {}
    for count in counts:
        start_at = time.time() + args.startup_seconds
        command = [sys.executable, __file__, "--worker", "--device", args.device]
        command += ["--size", *map(str, args.size), "--seconds", str(args.seconds)]
        command += ["--start-at", str(start_at)] + (["--smoke"] if args.smoke else [])
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
        ]
        outputs = [process.communicate()[0] for process in processes]
        rates = [
            float(line.split()[1])
            for output in outputs
            for line in output.splitlines()
            if line.startswith("IMAGES_PER_SECOND")
        ]
        if len(rates) != count:
            raise RuntimeError(f"{count - len(rates)} of {count} packed runs printed no rate")
        totals[count] = sum(rates)
    return totals


def run_script(name: str, arguments: list[str], out: Path) -> str:
    """Another benchmark's output, also written to ``out/<name>.txt``."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    text = result.stdout + (
        f"\n(exit {result.returncode})\n{result.stderr[-2000:]}" if result.returncode else ""
    )
    (out / f"{Path(name).stem}.txt").write_text(text)
    return text


def peak_share(flops: float, rate: float, args: argparse.Namespace) -> str:
    peak, _ = steps.peak_flops(torch.device(args.device), args.peak_tflops)
    return "n/a" if peak is None else f"{100 * flops * rate / peak:.1f} %"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_protocol"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--large", action="store_true", help="also 512x1024 (about +2 min)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per setting")
    parser.add_argument("--packing", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=10.0, help="packed runs' window")
    parser.add_argument("--startup-seconds", type=float, default=40.0)
    parser.add_argument("--sections", nargs="*", default=["steps", "packing", "loader", "rep"])
    parser.add_argument("--peak-tflops", type=float, default=None)
    # A packed run's own options (set by packed_rates).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = args.size or ([16, 32] if args.smoke else [128, 256])
    if args.worker:
        worker(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    lines = [
        f"# GPU protocol: {device_name or args.device}, torch {torch.__version__}, "
        f"commit {commit or 'unknown'}" + (" (smoke: tiny sizes)" if args.smoke else ""),
        "",
    ]

    if "steps" in args.sections:
        sizes = [tuple(args.size)] + ([(512, 1024)] if args.large and not args.smoke else [])
        lines += [
            "| setting | steps/s | images/s | share of bf16 peak |",
            "|---|---:|---:|---:|",
        ]
        batch = settings(args, sizes[0]).batch
        for size in sizes:
            rates = step_rates(args, size)
            for label in ("lightning eager", "bare eager", "lightning captured", "bare captured"):
                rate = rates[label]
                share = peak_share(rates["flops"], rate, args)
                lines.append(
                    f"| {size[0]}x{size[1]} {label} | {rate:.2f} | {rate * batch:.1f} | {share} |"
                )
            for kind in ("eager", "captured"):
                ratio = rates[f"lightning {kind}"] / rates[f"bare {kind}"]
                lines.append(f"| {size[0]}x{size[1]} Lightning / bare, {kind} | {ratio:.3f} | | |")
        lines.append("")

    if "packing" in args.sections:
        totals = packed_rates(args, args.packing)
        lines += ["| runs per GPU (K) | aggregate images/s | vs K = 1 |", "|---:|---:|---:|"]
        base = totals[args.packing[0]]
        lines += [f"| {k} | {rate:.1f} | {rate / base:.2f}x |" for k, rate in totals.items()]
        lines.append("")

    if "loader" in args.sections:
        loader_args = ["--images", "4", "--repeats", "1"] if args.smoke else ["--images", "16"]
        lines += ["## Loader", "", run_script("bench_data_loading.py", loader_args, args.out), ""]

    if "rep" in args.sections:
        rep_args = ["--methods", "mgda", "pcgrad", "upgrad", "imtl_g", "--rep-grad"]
        rep_args += ["--baseline", "uncertainty"]
        if args.smoke:
            rep_args += ["--steps", "1", "--warmup", "0", "--size", "32", "64"]
        lines += [
            "## Representation-level gradients",
            "",
            run_script("bench_weighting_methods.py", rep_args, args.out),
            "",
        ]

    lines.append(f"Wall time of this script: {time.perf_counter() - started:.0f} s")
    report = "\n".join(lines)
    (args.out / "gpu_protocol.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
