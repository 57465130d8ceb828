"""An experiment's pictures: per task pair trade-off curves, and sigma/weight evolution."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mtlscene.experiments.columns import Column, experiment_columns
from mtlscene.experiments.definition import Experiment
from mtlscene.experiments.settling import equilibrium_curves, read_history
from mtlscene.experiments.statistics import mean_std

TASK_COLOURS = {
    "semantic": "tab:blue",
    "instance": "tab:orange",
    "depth": "tab:green",
    "metric_depth": "tab:green",
    "normal": "tab:purple",
}


def tradeoff_axes(results: Sequence[dict[str, Any]]) -> dict[str, Column]:
    """One metric per task for the trade-off axes: the first Δm column its head declared."""
    axes: dict[str, Column] = {}
    for column in experiment_columns(results):
        if column.in_delta:
            axes.setdefault(column.task, column)
    return axes


def _row_points(results, experiment: Experiment, first: Column, second: Column):
    """Per row with both tasks: (row, x mean, x std, y mean, y std)."""
    points = []
    x_col, y_col = first, second
    for row in experiment.rows:
        runs = [
            r
            for r in results
            if r["row"] == row.name and x_col.key in r["test"] and y_col.key in r["test"]
        ]
        if runs:
            xs = [r["test"][x_col.key] * x_col.scale for r in runs]
            ys = [r["test"][y_col.key] * y_col.scale for r in runs]
            points.append((row, *mean_std(xs), *mean_std(ys)))
    return points


def _single_task_level(results, column: Column) -> float | None:
    task = column.task
    values = [r["test"][column.key] * column.scale for r in results if r["tasks"] == [task]]
    return statistics.fmean(values) if values else None


def plot_tradeoffs(results: Sequence[dict[str, Any]], experiment: Experiment, out_dir: Path):
    """For each task pair: fixed-weight runs as a curve (ordered by the first task's share
    of the weight), learned runs marked, single-task levels as dashed lines; mean ± std
    over seeds. The paper's weight-sensitivity figure, in the two metrics' plane."""
    written = []
    axes = tradeoff_axes(results)
    for first, second in itertools.combinations(axes, 2):
        x_col, y_col = axes[first], axes[second]
        points = _row_points(results, experiment, x_col, y_col)
        if not points:
            continue
        figure = Figure(figsize=(6.5, 5), constrained_layout=True)
        axis = figure.subplots()
        fixed = [p for p in points if p[0].is_fixed]

        def share(point, first=first, second=second):
            weights = point[0].weights
            total = weights.get(first, 0) + weights.get(second, 0)
            return weights.get(first, 0) / total if total else 0.0

        fixed.sort(key=share)
        if fixed:
            axis.errorbar(
                [p[1] for p in fixed],
                [p[3] for p in fixed],
                xerr=[p[2] for p in fixed],
                yerr=[p[4] for p in fixed],
                fmt="o-",
                color="0.4",
                capsize=2,
                label="fixed weights",
            )
            for point in fixed:
                axis.annotate(
                    f"{share(point):.3g}",
                    (point[1], point[3]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color="0.3",
                )
        markers = itertools.cycle("*PXD^v")
        for point in points:
            if point[0].is_fixed:
                continue
            axis.errorbar(
                [point[1]],
                [point[3]],
                xerr=[point[2]],
                yerr=[point[4]],
                fmt=next(markers),
                markersize=12,
                capsize=3,
                label=point[0].name,
            )
        for column, draw in ((x_col, axis.axvline), (y_col, axis.axhline)):
            level = _single_task_level(results, column)
            if level is not None:
                colour = TASK_COLOURS.get(column.task, "0.5")
                draw(level, linestyle="--", color=colour, alpha=0.6)
                axis.plot([], [], "--", color=colour, label=f"{column.task} only")
        axis.set(
            xlabel=f"{x_col.title} ({'higher' if x_col.higher_is_better else 'lower'} is better)",
            ylabel=f"{y_col.title} ({'higher' if y_col.higher_is_better else 'lower'} is better)",
            title=f"{experiment.name}: {first} vs {second} (labels: {first} weight share)",
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        path = out_dir / f"tradeoff_{first}_{second}.png"
        figure.savefig(path, dpi=110)
        written.append(path)
    return written


def plot_sigma_evolution(results: Sequence[dict[str, Any]], experiment: Experiment, out_dir):
    """Sigma and weight against step for every learned row, one thin line per seed, with
    the weight each task would have if its s had settled for the current loss (dashed)."""
    learned = [row for row in experiment.rows if not row.is_fixed]
    panels = []
    for row in learned:
        histories = [read_history(Path(r["log_dir"])) for r in results if r["row"] == row.name]
        # Only runs whose s moved: fixed weightings given as presets have nothing to show.
        histories = [h for h in histories if h and equilibrium_curves(h)]
        if histories:
            panels.append((row, histories))
    if not panels:
        return []
    figure = Figure(figsize=(9, 2.6 * len(panels)), constrained_layout=True)
    axes = figure.subplots(len(panels), 2, squeeze=False)
    for (row, histories), (ax_sigma, ax_weight) in zip(panels, axes, strict=True):
        for history in histories:
            for task in sorted({h["task"] for h in history}):
                points = sorted(
                    (h["step"], h["sigma"], h["weight"]) for h in history if h["task"] == task
                )
                colour = TASK_COLOURS.get(task)
                steps = [p[0] for p in points]
                ax_sigma.plot(steps, [p[1] for p in points], color=colour, alpha=0.6, lw=1)
                ax_weight.plot(steps, [p[2] for p in points], color=colour, alpha=0.6, lw=1)
            # Where the weight would be if s had settled for the current loss.
            for task, curve in equilibrium_curves(history).items():
                colour = TASK_COLOURS.get(task)
                ax_weight.plot(*zip(*curve, strict=True), color=colour, alpha=0.5, lw=1, ls="--")
        ax_sigma.set(title=f"{row.name}: sigma", xlabel="step")
        ax_weight.set(title=f"{row.name}: weight", xlabel="step", yscale="log")
        for axis in (ax_sigma, ax_weight):
            axis.grid(alpha=0.3)
    for task, colour in TASK_COLOURS.items():
        axes[0][0].plot([], [], color=colour, label=task)
    axes[0][0].legend(fontsize=7)
    axes[0][1].plot([], [], color="grey", label="learned weight")
    axes[0][1].plot([], [], color="grey", ls="--", label="w* = 1/(2kL): s settled for the loss")
    axes[0][1].legend(fontsize=7)
    path = out_dir / "sigma_evolution.png"
    figure.savefig(path, dpi=100)
    return [path]
