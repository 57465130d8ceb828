"""``table.md``'s paired comparisons: each row against its reference row, seed by seed, and
the paper's verdict (learned ≥ the best fixed weights) with its interval.

A row's mean ± std says how much its seeds spread, not whether it differs from another row:
two rows whose means are within a standard deviation can still differ on every seed, and
rows a standard deviation apart can be seed noise. Here each comparison is the paired
difference ``row - reference`` over the seeds both rows have, with a 95 % paired t interval
(`mtlscene.experiments.statistics` says why t and not a bootstrap). Every verdict says
"not distinguishable at N seeds" when its interval contains 0, and how many seeds the
measured spread implies.

The reference rows are the experiment's ``reference`` key, or, by default, for each set of
tasks trained together, its first row whose weights are not fixed (the learned row of the
paper's tables). A row is only paired with a reference that trained the same tasks: Δm and
the metrics of other task sets are not comparable.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from mtlscene.experiments.columns import Column
from mtlscene.experiments.definition import Experiment, Row, resolve_config
from mtlscene.experiments.delta import delta_m
from mtlscene.experiments.statistics import (
    PairedDifference,
    compare,
    format_difference,
    not_distinguishable,
    paired_difference,
)

DELTA = "delta_m"
# Weightings whose weights never change: the fixed points the paper's claim is about.
FIXED_CLASSES = ("mtlscene.weighting.FixedWeighting", "mtlscene.weighting.EqualWeighting")


def is_fixed(row: Row) -> bool:
    """Whether a row's task weights are constant: ``weights:`` or a fixed weighting preset."""
    if row.weights is not None:
        return True
    if row.weighting is None:
        return False
    try:
        preset = yaml.safe_load(resolve_config(f"weighting/{row.weighting}.yaml").read_text())
    except FileNotFoundError:
        return False
    weighting = ((preset or {}).get("model") or {}).get("weighting") or {}
    return weighting.get("class_path") in FIXED_CLASSES


def main_columns(columns: Sequence[Column]) -> list[Column]:
    """One metric per task: the first Δm column its head declared (IoU, errors, ...)."""
    chosen: dict[str, Column] = {}
    for column in columns:
        if column.in_delta:
            chosen.setdefault(column.task, column)
    return list(chosen.values())


def _series(
    runs: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    shown: Sequence[Column],
    baselines: Mapping[str, float],
) -> dict[str, dict[int, float]]:
    """Per quantity, seed -> value as printed in the table: ``delta_m`` (over every Δm
    column, as the table's Δm) and each ``shown`` column."""
    series: dict[str, dict[int, float]] = {}
    for run in runs:
        seed = int(run["seed"])
        if baselines:
            value = delta_m(run["test"], baselines, columns)
            if not math.isnan(value):
                series.setdefault(DELTA, {})[seed] = value
        for column in shown:
            if column.key in run["test"]:
                series.setdefault(column.key, {})[seed] = run["test"][column.key] * column.scale
    return series


def _task_sets(results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Row -> the tasks its runs trained (the first run's)."""
    tasks: dict[str, tuple[str, ...]] = {}
    for result in results:
        tasks.setdefault(result["row"], tuple(result["tasks"]))
    return tasks


def reference_rows(experiment: Experiment, results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The experiment's ``reference`` rows, or per multi-task task set its first non-fixed
    row (in the experiment's order)."""
    tasks = _task_sets(results)
    if experiment.reference:
        return [name for name in experiment.reference if name in tasks]
    chosen: dict[tuple[str, ...], str] = {}
    for row in experiment.rows:
        row_tasks = tasks.get(row.name)
        if row_tasks and len(row_tasks) > 1 and not is_fixed(row):
            chosen.setdefault(row_tasks, row.name)
    return list(chosen.values())


def _reading(differences: Mapping[str, PairedDifference], columns: Sequence[Column]) -> str:
    """The verdict of one row against its reference: on Δm, or on each metric without Δm."""
    if DELTA in differences:
        return f"Δm {compare(differences[DELTA], lower_is_better=True)}"
    parts = [
        f"{column.title} {compare(differences[column.key], not column.higher_is_better)}"
        for column in columns
        if column.key in differences
    ]
    return "; ".join(parts) or "-"


def paired_lines(
    results: Sequence[Mapping[str, Any]],
    experiment: Experiment,
    columns: Sequence[Column],
    baselines: Mapping[str, float],
) -> list[str]:
    """Markdown: per reference row a table of paired differences, then the verdict of every
    non-fixed row against the best fixed row of its task set."""
    tasks = _task_sets(results)
    shown = main_columns(columns)
    series = {
        row.name: _series([r for r in results if r["row"] == row.name], columns, shown, baselines)
        for row in experiment.rows
    }
    lines: list[str] = []
    for reference in reference_rows(experiment, results):
        others = [
            row.name
            for row in experiment.rows
            if row.name != reference and tasks.get(row.name) == tasks[reference]
        ]
        if not others:
            continue
        keys = ([DELTA] if DELTA in series[reference] else []) + [
            c.key for c in shown if c.key in series[reference]
        ]
        titles = {DELTA: "Δm % (↓)"} | {c.key: c.title for c in shown}
        digits = {DELTA: 2} | {c.key: c.digits for c in shown}
        header = ["Loss", "seeds", *(titles[k] for k in keys), "reading"]
        lines += [
            "",
            f"### Paired against {reference}: row − reference, seed by seed (test split)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for name in others:
            differences = {}
            for key in keys:
                difference = paired_difference(series[name].get(key, {}), series[reference][key])
                if difference is not None:
                    differences[key] = difference
            if not differences:
                continue
            count = max(d.n for d in differences.values())
            cells = [
                "-" if key not in differences else format_difference(differences[key], digits[key])
                for key in keys
            ]
            reading = _reading(differences, [c for c in shown if c.key in keys])
            lines.append(f"| {name} | {count} | " + " | ".join(cells) + f" | {reading} |")
        lines += [
            "",
            "Each cell: the mean of the per-seed differences (row minus reference, in the "
            "column's units; Δm in percentage points) and its 95 % paired t interval over the "
            "seeds both rows have. An interval that contains 0 is not distinguishable at that "
            'many seeds; "implies N seeds": the number at which the measured mean difference '
            "and spread would give an interval excluding 0.",
        ]
    steps = {}
    for result in results:  # the training length: only rows trained as long are compared
        steps.setdefault(result["row"], (tasks[result["row"]], result.get("global_step")))
    lines += best_fixed_lines(experiment, series, steps)
    return lines


def best_fixed_lines(
    experiment: Experiment,
    series: Mapping[str, Mapping[str, Mapping[int, float]]],
    setups: Mapping[str, tuple[tuple[str, ...], Any]],
) -> list[str]:
    """The paper's claim, learned ≥ the best fixed weights, on Δm, for every non-fixed row
    against the fixed rows of the same setup: ``setups`` maps a row to its tasks and
    training steps, and rows are compared only within one setup."""
    verdicts: list[str] = []
    fixed = {row.name for row in experiment.rows if is_fixed(row)}
    for setup in dict.fromkeys(setups[row.name] for row in experiment.rows if row.name in setups):
        rows = [
            row.name
            for row in experiment.rows
            if setups.get(row.name) == setup and len(setup[0]) > 1 and series[row.name].get(DELTA)
        ]
        candidates = [name for name in rows if name in fixed]
        if not candidates:
            continue
        best = min(candidates, key=lambda name: statistics.fmean(series[name][DELTA].values()))
        for name in rows:
            if name in fixed:
                continue
            difference = paired_difference(series[name][DELTA], series[best][DELTA])
            if difference is not None:
                verdicts.append(
                    f"- {name} against {best}: Δm {format_difference(difference)} points: "
                    f"{claim(difference)}."
                )
    if not verdicts:
        return []
    return [
        "",
        "### Learned against the best fixed weights (the paper: learned ≥ best fixed)",
        "",
        "Each row whose weights are not fixed, paired on Δm with the fixed-weight row of the "
        "same tasks and training steps that has the lowest mean Δm (chosen on these test "
        "seeds, which favours it). 95 % paired t interval of row minus best fixed; negative "
        "is better.",
        "",
        *verdicts,
    ]


def versus(
    row: str, reference: str, values: Mapping[int, float], reference_values: Mapping[int, float]
) -> str | None:
    """One sentence on Δm per seed: ``"A against B: Δm +1.00 [-3.97, +5.97] points: not
    distinguishable at 3 seeds (...)"``; None without a common seed."""
    difference = paired_difference(values, reference_values)
    if difference is None:
        return None
    return (
        f"{row} against {reference}: Δm {format_difference(difference)} points: "
        f"{compare(difference, lower_is_better=True)}"
    )


def claim(difference: PairedDifference) -> str:
    """Whether "learned ≥ best fixed" holds for a Δm difference (learned minus fixed)."""
    if not difference.excludes_zero:
        return f"{not_distinguishable(difference)}, so neither shown nor refuted"
    if difference.mean < 0.0:
        return f"better at {difference.n} seeds: learned ≥ best fixed holds"
    return f"worse at {difference.n} seeds: learned ≥ best fixed does not hold"


__all__ = [
    "best_fixed_lines",
    "claim",
    "is_fixed",
    "main_columns",
    "paired_lines",
    "reference_rows",
    "versus",
]
