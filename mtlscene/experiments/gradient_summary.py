"""Gradient diagnostics of several runs (seeds) as one markdown table and one figure.

Reads the ``gradient_diagnostics.csv`` files the `GradientDiagnostics` callback
writes and reports, per task pair, mean ± std over the runs of: the mean cosine early and
late in training, the share of measured steps in conflict (cos < 0) and the mean magnitude
ratio ``||g_a|| / ||g_b||``.

    python -m mtlscene.experiments.gradient_summary runs/*/gradient_diagnostics.csv \\
        --table gradients.md --figure gradients.png
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from mtlscene.errors import ConfigError, report
from mtlscene.experiments.statistics import format_mean_std
from mtlscene.relationships.gradient_figures import (
    conflict_share,
    gradient_band_figure,
    save_figure,
)

REQUIRED_COLUMNS = ("step", "task_a", "task_b", "cosine", "ratio")


def read_gradient_csv(path: str | Path) -> dict[str, list[tuple[int, float, float]]]:
    """One run's CSV as pair ``a~b`` -> [(step, cosine, ratio)] sorted by step.

    Raises:
        ConfigError: the file is missing or lacks the callback's columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file; pass the gradient_diagnostics.csv of each run (written "
            "by the GradientDiagnostics callback into the run's log folder)"
        )
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: columns {missing} are missing; is it a gradient_diagnostics.csv "
                "written by the GradientDiagnostics callback?"
            )
        pairs: dict[str, list[tuple[int, float, float]]] = {}
        for row in reader:
            pair = f"{row['task_a']}~{row['task_b']}"
            pairs.setdefault(pair, []).append(
                (int(row["step"]), float(row["cosine"]), float(row["ratio"]))
            )
    if not pairs:
        raise ConfigError(f"{path}: no measurements; did the run reach a measured step?")
    return {pair: sorted(points) for pair, points in pairs.items()}


def _nanmean(values: Sequence[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return statistics.fmean(defined) if defined else math.nan


@dataclass
class PairSummary:
    """Per-run values of one task pair (one entry per run where defined)."""

    cosine_early: list[float]
    cosine_late: list[float]
    conflict: list[float]
    ratio: list[float]


def summarize_runs(paths: Sequence[str | Path], window: float = 1 / 3) -> dict[str, PairSummary]:
    """Per pair, each run's early and late mean cosine, conflict share and mean ratio.

    Args:
        paths: one ``gradient_diagnostics.csv`` per run.
        window: the share of a run's measured steps that counts as early (its first ones)
            and as late (its last ones).
    """
    if not 0 < window <= 1:
        raise ConfigError(f"window must be in (0, 1], got {window}")
    summary: dict[str, PairSummary] = {}
    for path in paths:
        for pair, points in read_gradient_csv(path).items():
            cosines = [c for _, c, _ in points]
            count = max(1, math.ceil(window * len(cosines)))
            values = (
                _nanmean(cosines[:count]),
                _nanmean(cosines[-count:]),
                conflict_share(cosines),
                _nanmean([r for _, _, r in points]),
            )
            entry = summary.setdefault(pair, PairSummary([], [], [], []))
            for target, value in zip(
                (entry.cosine_early, entry.cosine_late, entry.conflict, entry.ratio),
                values,
                strict=True,
            ):
                if not math.isnan(value):
                    target.append(value)
    return summary


def _mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    return format_mean_std(values, digits, scale, empty="–")


def gradient_summary_table(paths: Sequence[str | Path], window: float = 1 / 3) -> str:
    """The markdown table: per pair, mean ± std over runs (see `summarize_runs`)."""
    summary = summarize_runs(paths, window)
    lines = [
        f"| task pair | cosine, first {window:.0%} | cosine, last {window:.0%} | "
        "steps in conflict (cos < 0) % | magnitude ratio ‖g_a‖/‖g_b‖ |",
        "|---|---:|---:|---:|---:|",
    ]
    for pair, entry in summary.items():
        lines.append(
            f"| {pair} | {_mean_std(entry.cosine_early)} | {_mean_std(entry.cosine_late)} | "
            f"{_mean_std(entry.conflict, 100.0, 0)} | {_mean_std(entry.ratio)} |"
        )
    lines.append(
        f"\nMean ± std over {len(paths)} runs; cosine and ratio of the task gradients at the "
        "shared encoder, NaN steps (a task absent from the batch) left out."
    )
    return "\n".join(lines)


def gradient_summary_figure(paths: Sequence[str | Path], title: str = "") -> Figure:
    """Mean cosine per pair against step over the runs, with a ±1 std band."""
    per_step: dict[str, dict[int, list[float]]] = {}
    for path in paths:
        for pair, points in read_gradient_csv(path).items():
            for step, cosine, _ in points:
                if not math.isnan(cosine):
                    per_step.setdefault(pair, {}).setdefault(step, []).append(cosine)
    curves = {}
    for pair, by_step in per_step.items():
        steps = sorted(by_step)
        mean = [statistics.fmean(by_step[s]) for s in steps]
        std = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
        curves[pair] = (steps, mean, std)
    return gradient_band_figure(curves, runs=len(paths), title=title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtlscene.experiments.gradient_summary", description=__doc__.split("\n")[0]
    )
    parser.add_argument("csv", nargs="+", help="gradient_diagnostics.csv of each run")
    parser.add_argument("--window", type=float, default=1 / 3, help="early/late share of steps")
    parser.add_argument("--table", type=Path, help="also write the markdown table here")
    parser.add_argument("--figure", type=Path, help="write the mean ± std figure here (PNG)")
    args = parser.parse_args(argv)
    try:
        table = gradient_summary_table(args.csv, args.window)
        if args.figure is not None:
            save_figure(gradient_summary_figure(args.csv), args.figure)
    except ConfigError as error:
        return report(error, parser.prog)
    print(table)
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
