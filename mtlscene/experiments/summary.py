"""An experiment's results as ``results.csv``, ``table.md`` (mean ± std, Δm%) and figures."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlscene.experiments.definition import Experiment, load_experiment
from mtlscene.experiments.settling import settling_lines
from mtlscene.experiments.single_run import RESULT_FILE

EXPERIMENT_COPY = "experiment.yaml"


@dataclass(frozen=True)
class Column:
    """A table column: a test metric, its title, scale, direction and task."""

    key: str
    title: str
    scale: float
    higher_is_better: bool
    task: str
    digits: int = 2


# The paper's Table 1 columns (test split), plus AP which our clustering adds.
COLUMNS = (
    Column("test/semantic/miou", "IoU %", 100.0, True, "semantic"),
    Column("test/instance/mae", "Instance err px", 1.0, False, "instance", 3),
    Column("test/depth/mae", "Inv. depth err px", 1.0, False, "depth", 3),
    Column("test/instance/ap", "AP %", 100.0, True, "instance"),
    Column("test/panoptic/pq", "PQ %", 100.0, True, "semantic"),
)
# Δm% compares the paper's three task metrics with the single-task rows.
DELTA_COLUMNS = COLUMNS[:3]


def load_results(out_dir: Path) -> list[dict[str, Any]]:
    """Every finished run's ``result.json`` under ``out_dir/runs``."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((out_dir / "runs").glob(f"*/seed*/{RESULT_FILE}"))
    ]


def _flatten(result: dict[str, Any]) -> dict[str, Any]:
    row = {
        "row": result["row"],
        "seed": result["seed"],
        "tasks": "+".join(result["tasks"]),
        "global_step": result["global_step"],
        "wall_time_s": round(result["wall_time_s"], 1),
    }
    row.update(result["test"])
    row.update(result["val"])
    row.update({f"sigma/{task}": value for task, value in result["sigma"].items()})
    row.update({f"weight/{task}": value for task, value in result["weight"].items()})
    return row


def write_csv(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per run: row, seed, every final metric, final sigmas and weights, time."""
    rows = [_flatten(result) for result in results]
    fixed = ["row", "seed", "tasks", "global_step", "wall_time_s"]
    others = sorted({key for row in rows for key in row} - set(fixed))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fixed + others)
        writer.writeheader()
        writer.writerows(rows)
    return path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def single_task_baselines(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each Δm metric over the runs that trained its task alone."""
    baselines = {}
    for column in DELTA_COLUMNS:
        values = [
            r["test"][column.key]
            for r in results
            if r["tasks"] == [column.task] and column.key in r["test"]
        ]
        if values:
            baselines[column.key] = statistics.fmean(values)
    return baselines


def delta_m(metrics: dict[str, float], baselines: dict[str, float]) -> float:
    """Δm% (Maninis et al. 2019; as in Nash-MTL and FAMO): the mean over task metrics of
    the relative change against the single-task baseline, signed so that a negative value
    is an improvement. NaN when the run has none of the baselines' metrics."""
    changes = []
    for column in DELTA_COLUMNS:
        if column.key in metrics and column.key in baselines and baselines[column.key]:
            change = (metrics[column.key] - baselines[column.key]) / baselines[column.key]
            changes.append(-change if column.higher_is_better else change)
    return 100.0 * statistics.fmean(changes) if changes else math.nan


SHORT = {"semantic": "sem", "instance": "inst", "depth": "depth"}


def _row_weights(experiment: Experiment, row_name: str, results) -> str:
    row = next((r for r in experiment.rows if r.name == row_name), None)
    if row is not None and row.weights is not None:
        return " / ".join(f"{SHORT.get(t, t)} {w:g}" for t, w in row.weights.items())
    weights = [r["weight"] for r in results]
    if not weights:
        return ""
    tasks = list(weights[0])
    if row is not None and row.weighting and "uncertainty" not in row.weighting:
        label = row.weighting
    else:
        label = "learned"
    means = " / ".join(
        f"{SHORT.get(t, t)} {statistics.fmean(w[t] for w in weights):.2f}" for t in tasks
    )
    return f"{label} ({means})"


def write_table(
    results: Sequence[dict[str, Any]], experiment: Experiment, path: Path, seeds: int
) -> Path:
    """Mean ± std over seeds in the paper's columns, the best of each column in bold."""
    baselines = single_task_baselines(results)
    by_row = {row.name: [r for r in results if r["row"] == row.name] for row in experiment.rows}
    cells: dict[str, dict[str, tuple[float, float]]] = {}
    for name, runs in by_row.items():
        cells[name] = {}
        for column in COLUMNS:
            values = [r["test"][column.key] * column.scale for r in runs if column.key in r["test"]]
            if values:
                cells[name][column.key] = mean_std(values)
        deltas = [delta_m(r["test"], baselines) for r in runs]
        deltas = [d for d in deltas if not math.isnan(d)]
        # Single-task rows are the reference: their Δm is 0 by construction less noise.
        if deltas and any(len(r["tasks"]) > 1 for r in runs):
            cells[name]["delta_m"] = mean_std(deltas)
    best = {}
    for key, higher in [(c.key, c.higher_is_better) for c in COLUMNS] + [("delta_m", False)]:
        means = [cell[key][0] for cell in cells.values() if key in cell]
        if means:
            best[key] = max(means) if higher else min(means)
    digits = {c.key: c.digits for c in COLUMNS} | {"delta_m": 2}
    header = ["Loss", "Weights", *[c.title for c in COLUMNS], "Δm % (↓)", "seeds"]
    lines = [
        f"### {experiment.name}: mean ± std over seeds (test split)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, runs in by_row.items():
        row_cells = [name, _row_weights(experiment, name, runs)]
        for key in [c.key for c in COLUMNS] + ["delta_m"]:
            if key not in cells[name]:
                row_cells.append("-")
                continue
            mean, std = cells[name][key]
            text = f"{mean:.{digits[key]}f} ± {std:.{digits[key]}f}"
            is_best = math.isclose(mean, best[key], rel_tol=0, abs_tol=1e-12)
            row_cells.append(f"**{text}**" if is_best else text)
        row_cells.append(f"{len(runs)}/{seeds}")
        lines.append("| " + " | ".join(row_cells) + " |")
    lines += [
        "",
        "Bold: best mean of each column. Δm %: mean relative change of IoU, instance error "
        "and inverse-depth error against the single-task rows, negative = better than "
        "training each task alone.",
    ]
    lines += settling_lines(results, [row.name for row in experiment.rows if not row.is_fixed])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def summarize(out_dir: str | Path, experiment: Experiment | None = None) -> list[Path]:
    """Write ``results.csv``, ``table.md`` and the figures of an experiment directory."""
    from mtlscene.experiments.figures import plot_sigma_evolution, plot_tradeoffs

    out_dir = Path(out_dir)
    if experiment is None:
        experiment = load_experiment(out_dir / EXPERIMENT_COPY)
    results = load_results(out_dir)
    if not results:
        return []
    seeds = max(r["seed"] for r in results) + 1
    written = [
        write_csv(results, out_dir / "results.csv"),
        write_table(results, experiment, out_dir / "table.md", seeds),
    ]
    written += plot_tradeoffs(results, experiment, out_dir)
    written += plot_sigma_evolution(results, experiment, out_dir)
    return written
