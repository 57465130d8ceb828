"""Δm: a multi-task run's metrics against the single-task runs, in three published forms.

With ``M`` a metric of the run, ``B`` the same metric of the run that trained its task
alone, and the signed relative change ``c = (M - B) / B`` for a lower-is-better metric and
``c = -(M - B) / B`` for a higher-is-better one (so ``c > 0`` is worse):

- **Nash-MTL / FAMO** (Maninis et al. 2019; Navon et al. 2022; Liu et al. 2023):
  ``Δm = 100 * mean over all metrics of c``, lower is better. On NYUv2 the normals carry
  five of the nine metrics, so they weigh 5/9.
- **mtan, per task** (Liu et al. 2019 compare task by task): ``Δ_t = 100 * mean over the
  metrics of task t of c``, one number per task, lower is better.
- **LibMTL Δp** (Lin & Zhang 2023): ``Δp = -100 * mean over tasks t of (mean over the
  metrics of t of c)``: metrics averaged within a task first, so each task weighs the
  same, and the sign flipped so that **higher is better**.

A metric the run lacks (a task it did not train) or whose baseline is missing or zero is
left out of every mean; a value is NaN when nothing is left.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from mtlscene.experiments.columns import LEGACY_COLUMNS, Column, delta_columns

CONVENTIONS = ("nash_mtl", "mtan", "libmtl")


def single_task_baselines(
    results: Sequence[dict[str, Any]], columns: Sequence[Column] = LEGACY_COLUMNS
) -> dict[str, float]:
    """Mean of each Δm metric over the runs that trained its task alone."""
    baselines = {}
    for column in delta_columns(columns):
        values = [
            r["test"][column.key]
            for r in results
            if r["tasks"] == [column.task] and column.key in r["test"]
        ]
        if values:
            baselines[column.key] = statistics.fmean(values)
    return baselines


def relative_changes(
    metrics: Mapping[str, float],
    baselines: Mapping[str, float],
    columns: Sequence[Column] = LEGACY_COLUMNS,
) -> dict[str, list[float]]:
    """Task -> the signed relative changes ``c`` of its Δm metrics (positive = worse)."""
    changes: dict[str, list[float]] = {}
    for column in delta_columns(columns):
        baseline = baselines.get(column.key)
        if column.key not in metrics or not baseline:
            continue
        change = (metrics[column.key] - baseline) / baseline
        changes.setdefault(column.task, []).append(-change if column.higher_is_better else change)
    return changes


def delta_m(
    metrics: Mapping[str, float],
    baselines: Mapping[str, float],
    columns: Sequence[Column] = LEGACY_COLUMNS,
) -> float:
    """Nash-MTL/FAMO Δm %: the mean over all metrics, lower is better."""
    changes = [c for task in relative_changes(metrics, baselines, columns).values() for c in task]
    return 100.0 * statistics.fmean(changes) if changes else math.nan


def delta_per_task(
    metrics: Mapping[str, float],
    baselines: Mapping[str, float],
    columns: Sequence[Column] = LEGACY_COLUMNS,
) -> dict[str, float]:
    """mtan-style Δ % per task: the mean over each task's metrics, lower is better."""
    return {
        task: 100.0 * statistics.fmean(changes)
        for task, changes in relative_changes(metrics, baselines, columns).items()
    }


def delta_p(
    metrics: Mapping[str, float],
    baselines: Mapping[str, float],
    columns: Sequence[Column] = LEGACY_COLUMNS,
) -> float:
    """LibMTL Δp %: metrics averaged within each task, then over tasks; higher is better."""
    per_task = delta_per_task(metrics, baselines, columns)
    return -statistics.fmean(per_task.values()) if per_task else math.nan
