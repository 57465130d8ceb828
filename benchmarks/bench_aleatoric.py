"""Training-step time with per-pixel (aleatoric) uncertainty vs without, and the accuracy of the
semantic loss's estimators.

Builds the quick start's network (resnet18 DeepLab, the three CityScapes heads, uncertainty
weighting) at the CPU experiments' size once per variant, with the same seed (same initial
weights apart from the extra log-scale channel), and times full training steps (forward,
losses, weighting, backward, optimizer step) on the same fixed batches. Every round runs one
step of each variant in a shuffled order, and each variant's time is divided by the plain
network's in the same round: the table shows median step times and the median of these
paired ratios, so slow drifts of a shared machine cancel.

Variants: ``off`` (no aleatoric head), ``regressions only`` (instance and depth aleatoric,
semantics plain: the cost of the regression NLLs alone), ``semantic only, <estimator>``
(the semantic head aleatoric, the regressions plain: the cost of the semantic loss over the
plain cross-entropy) for the mean-field estimator (the default) and the sampled one at each
``--samples`` T, and ``all heads, mean_field``.

Accuracy: the semantic loss of each estimator on random logits (19 classes, logits
N(0, 2^2), s uniform in [-4, 4], random labels), against a ``--reference-samples`` Monte-Carlo
reference: the mean loss, its difference from the reference (absolute and relative) and the
mean absolute per-pixel difference.

    OMP_NUM_THREADS=1 python benchmarks/bench_aleatoric.py --size 64 128 --batch-size 8 --steps 10
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
from mtlscene.tasks.noisy_softmax import expected_log_probabilities  # noqa: E402
from mtlscene.uncertainty.aleatoric import DEFAULT_SEMANTIC_SAMPLES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tasks_option(
    semantic: bool, regressions: bool, samples: int, estimator: str = "mean_field"
) -> str:
    """The ``--model.tasks`` value of the quick start's heads with these switches."""
    sem = (
        f"aleatoric: {str(semantic).lower()}, aleatoric_samples: {samples}, "
        f"aleatoric_estimator: {estimator}"
    )
    reg = f"aleatoric: {str(regressions).lower()}"
    return (
        f"{{semantic: {{label_set: trainid, hidden_channels: 64, {sem}}}, "
        f"instance: {{hidden_channels: 64, {reg}}}, depth: {{hidden_channels: 64, {reg}}}}}"
    )


def build(tasks: str, args: argparse.Namespace):
    cli = build_cli(
        [
            "--config",
            str(ROOT / "configs" / "quickstart.yaml"),
            "--config",
            str(ROOT / "configs" / "budgets" / "cpu_small.yaml"),
            "--model.tasks",
            tasks,
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
        ],
        run=False,
    )
    model = cli.model.train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    return cli, model, optimizer


def step(model, optimizer, batch, index: int) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = model.training_step(batch, index)
    loss.backward()
    optimizer.step()


def estimator_accuracy(pixels: int, reference_samples: int) -> list[tuple[str, float, float]]:
    """``(estimator, mean loss, mean |per-pixel difference|)`` on random logits, the first
    row the Monte-Carlo reference (module doc)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 19, pixels, 1, generator=generator) * 2.0
    s = torch.empty(1, 1, pixels, 1).uniform_(-4.0, 4.0, generator=generator)
    target = torch.randint(0, 19, (1, 1, pixels, 1), generator=generator)

    def per_pixel(estimator: str, samples: int = 1, seed: int = 1) -> torch.Tensor:
        noise = torch.Generator().manual_seed(seed)
        log_probs = expected_log_probabilities(logits, s, estimator, samples, noise)
        return -log_probs.gather(1, target)

    # The reference in chunks of 1000 samples: the mean of their probabilities.
    chunks = max(1, reference_samples // 1000)
    probabilities = sum(
        per_pixel("sampled", 1000, seed=100 + chunk).neg().exp() for chunk in range(chunks)
    )
    reference = -torch.log(probabilities / chunks)
    rows = [(f"reference (sampled, T={chunks * 1000})", float(reference.mean()), 0.0)]
    candidates = [("mean_field", per_pixel("mean_field"))]
    candidates += [(f"sampled, T={t}", per_pixel("sampled", t)) for t in (2, 10)]
    for name, loss in candidates:
        rows.append((name, float(loss.mean()), float((loss - reference).abs().mean())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=2, help="distinct batches, reused")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--samples",
        type=int,
        nargs="*",
        default=[DEFAULT_SEMANTIC_SAMPLES],
        help="T of the sampled semantic estimator to time",
    )
    parser.add_argument("--accuracy-pixels", type=int, default=2000)
    parser.add_argument("--reference-samples", type=int, default=20000)
    parser.add_argument("--data", default="data/bench_aleatoric")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # self.log without a Trainer warns once per key

    plain_samples = DEFAULT_SEMANTIC_SAMPLES
    variants = {
        "off": tasks_option(False, False, plain_samples),
        "regressions only": tasks_option(False, True, plain_samples),
        "semantic only, mean_field": tasks_option(True, False, plain_samples),
    }
    for samples in args.samples:
        variants[f"semantic only, sampled T={samples}"] = tasks_option(
            True, False, samples, "sampled"
        )
    variants["all heads, mean_field"] = tasks_option(True, True, plain_samples)
    runs = {}
    for name, tasks in variants.items():
        torch.manual_seed(0)
        runs[name] = build(tasks, args)
    cli = runs["off"][0]
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    loader = iter(cli.datamodule.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for index in range(args.warmup + args.steps):
        batch = batches[index % len(batches)]
        random.Random(index).shuffle(order)
        for name in order:
            _, model, optimizer = runs[name]
            start = time.perf_counter()
            step(model, optimizer, batch, index)
            if index >= args.warmup:
                times[name].append(time.perf_counter() - start)
    print(
        f"Training step, {args.size[0]}x{args.size[1]}, batch {args.batch_size}, quick start "
        f"network (resnet18 DeepLab, 3 heads, uncertainty weighting), {args.steps} steps per "
        f"variant, torch threads {torch.get_num_threads()}"
    )
    print("| variant | median step (ms) | vs off (median paired ratio) |")
    print("|---|---:|---:|")
    for name in runs:
        ratios = [t / o for t, o in zip(times[name], times["off"], strict=True)]
        print(
            f"| {name} | {1000 * statistics.median(times[name]):.1f} | "
            f"{statistics.median(ratios):.3f} |"
        )
    rows = estimator_accuracy(args.accuracy_pixels, args.reference_samples)
    reference = rows[0][1]
    print(
        f"\nSemantic loss on random logits ({args.accuracy_pixels} pixels, 19 classes, logits "
        "N(0, 2^2), s ~ U(-4, 4)) against the Monte-Carlo reference"
    )
    print("| estimator | mean loss | vs reference | mean abs per-pixel diff |")
    print("|---|---:|---:|---:|")
    for name, mean, gap in rows:
        change = mean - reference
        print(
            f"| {name} | {mean:.4f} | {change:+.4f} ({100 * change / reference:+.1f} %) | "
            f"{gap:.4f} |"
        )


if __name__ == "__main__":
    main()
