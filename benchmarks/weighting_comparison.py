"""The paper's weighting experiment on synthetic CityScapes-format data, side by side.

Trains the same network with each loss weighting (single tasks, unweighted sum, the paper's
approximately optimal fixed weights, learned uncertainty) under one budget and prints the
paper's table columns. CPU-sized by default; pass --epochs/--size for longer runs.

    python benchmarks/weighting_comparison.py --epochs 6
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from mtlscene.main import build_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "Segmentation only": "semantic_only",
    "Instance only": "instance_only",
    "Depth only": "depth_only",
    "Unweighted sum": "unweighted_sum",
    "Approx. optimal (0.89/0.01/0.1)": "approx_optimal",
    "Uncertainty (learned)": "uncertainty",
}


def run(preset: str, args: argparse.Namespace) -> dict[str, float]:
    out = Path(args.out) / preset
    cli = build_cli(
        [
            "--config",
            str(ROOT / "configs" / "quickstart.yaml"),
            "--config",
            str(ROOT / "configs" / "weighting" / f"{preset}.yaml"),
            "--trainer.max_epochs",
            str(args.epochs),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--trainer.default_root_dir",
            str(out),
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--model.lr_scheduler.init_args.total_iters",
            str(args.epochs),
            "--data.root",
            args.data,
            "--data.size",
            f"[{args.size[0]}, {args.size[1]}]",
            "--data.synthetic_images",
            f"{{train: {args.train}, val: {args.val}, test: 8}}",
        ],
        run=False,
    )
    cli.trainer.callbacks = [
        c for c in cli.trainer.callbacks if type(c).__name__ != "PredictionWriter"
    ]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    metrics = cli.trainer.callback_metrics
    return {key: float(value) for key, value in metrics.items() if key.startswith("val/")}


def _cell(metrics: dict[str, float], key: str, scale: float = 1.0) -> str:
    return f"{metrics[key] * scale:.2f}" if key in metrics else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--train", type=int, default=160)
    parser.add_argument("--val", type=int, default=48)
    parser.add_argument("--data", default="data/weighting_comparison")
    parser.add_argument("--out", default="runs/weighting_comparison")
    parser.add_argument("--only", nargs="*", help="preset names to run (default all)")
    args = parser.parse_args(argv)

    rows = []
    for title, preset in PRESETS.items():
        if args.only and preset not in args.only:
            continue
        start = time.perf_counter()
        metrics = run(preset, args)
        rows.append((title, metrics, time.perf_counter() - start))
    header = (
        f"{'Loss':<34}{'IoU %':>8}{'Inst. err px':>14}{'Inv. depth err px':>19}"
        f"{'AP %':>7}{'time s':>8}"
    )
    print(
        f"\n{args.epochs} epochs, {args.size[0]}x{args.size[1]}, {args.train} train / "
        f"{args.val} val synthetic images\n{header}\n{'-' * len(header)}"
    )
    for title, metrics, seconds in rows:
        print(
            f"{title:<34}{_cell(metrics, 'val/semantic/miou', 100):>8}"
            f"{_cell(metrics, 'val/instance/mae'):>14}{_cell(metrics, 'val/depth/mae'):>19}"
            f"{_cell(metrics, 'val/instance/ap', 100):>7}{seconds:>8.0f}"
        )


if __name__ == "__main__":
    main()
