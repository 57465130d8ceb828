"""An experiment's results as ``results.csv``, ``table.md`` (mean ± std, Δm%, paired
comparisons) and figures."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlscene.experiments.columns import LEGACY_COLUMNS, experiment_columns
from mtlscene.experiments.cost_table import cost_lines, flat_cost
from mtlscene.experiments.definition import Experiment, load_experiment
from mtlscene.experiments.delta import (
    delta_m,
    delta_p,
    delta_per_task,
    single_task_baselines,
)
from mtlscene.experiments.figures import plot_sigma_evolution, plot_tradeoffs
from mtlscene.experiments.paired_table import paired_lines
from mtlscene.experiments.published import published_lines
from mtlscene.experiments.results_csv import COLUMNS_FILE, read_csv, write_columns
from mtlscene.experiments.settling import settling_lines
from mtlscene.experiments.single_run import RESULT_FILE
from mtlscene.experiments.statistics import mean_std, plus_minus

EXPERIMENT_COPY = "experiment.yaml"
SIGMA_FIGURE = "sigma_evolution.png"
# table.md sections that need the run folders (each run's sigma history): a table rewritten
# from results.csv alone keeps them as they were.
RUN_FOLDER_SECTIONS = ("### Has sigma settled?",)


# Kept for callers of the paper's columns; tables follow the heads (experiment_columns).
COLUMNS = LEGACY_COLUMNS


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
    row.update(flat_cost(result))
    return row


def write_csv(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per run: row, seed, every final metric, final sigmas and weights, time, and
    the run's cost when it recorded one."""
    rows = [_flatten(result) for result in results]
    fixed = ["row", "seed", "tasks", "global_step", "wall_time_s"]
    others = sorted({key for row in rows for key in row} - set(fixed))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fixed + others)
        writer.writeheader()
        writer.writerows(rows)
    return path


SHORT = {
    "semantic": "sem",
    "instance": "inst",
    "depth": "depth",
    "metric_depth": "depth",
    "normal": "normal",
}


def _row_weights(experiment: Experiment, row_name: str, results) -> str:
    row = next((r for r in experiment.rows if r.name == row_name), None)
    if row is not None and row.weights is not None:
        return " / ".join(f"{SHORT.get(t, t)} {w:g}" for t, w in row.weights.items())
    weights = [r["weight"] for r in results]
    if not weights:
        return ""
    tasks = list(weights[0])
    # Learned: uncertainty weighting's presets (alone or composed with a gradient method).
    if row is not None and row.weighting and not row.weighting.startswith("uncertainty"):
        label = row.weighting
    else:
        label = "learned"
    means = " / ".join(
        f"{SHORT.get(t, t)} {statistics.fmean(w[t] for w in weights):.2f}" for t in tasks
    )
    return f"{label} ({means})"


def _cell(value: tuple[float, float], digits: int, best: float | None) -> str:
    mean, std = value
    text = plus_minus(mean, std, digits)
    is_best = best is not None and math.isclose(mean, best, rel_tol=0, abs_tol=1e-12)
    return f"**{text}**" if is_best else text


def figure_lines(folder: Path, tasks: Sequence[str]) -> list[str]:
    """A ``### Figures`` section showing the figures ``summarize`` wrote beside the table
    (none when there are none): the trade-off of each task pair, then sigma and weight."""
    figures = []
    for pair in itertools.combinations(tasks, 2):
        # The pair's order follows the columns when the figure was drawn: either may exist.
        for a, b in (pair, pair[::-1]):
            if (folder / f"tradeoff_{a}_{b}.png").is_file():
                alt = f"{a} against {b}: fixed weights as a curve, learned marked"
                figures.append((f"tradeoff_{a}_{b}.png", alt))
                break
    if (folder / SIGMA_FIGURE).is_file():
        figures.append((SIGMA_FIGURE, "sigma and weight of every learned row against step"))
    lines = [f"![{alt}]({name})" for name, alt in figures]
    if not lines:
        return []
    return ["", "### Figures", "", *"\n\n".join(lines).split("\n")]


def write_table(
    results: Sequence[dict[str, Any]], experiment: Experiment, path: Path, seeds: int
) -> Path:
    """Mean ± std over seeds in the heads' columns, Δm in three conventions, best in bold."""
    columns = experiment_columns(results)
    baselines = single_task_baselines(results, columns)
    delta_tasks = list(dict.fromkeys(c.task for c in columns if c.in_delta))
    by_row = {row.name: [r for r in results if r["row"] == row.name] for row in experiment.rows}
    # key -> (digits, higher is better) of every numeric column, Δ columns included.
    kinds: dict[str, tuple[int, bool]] = {c.key: (c.digits, c.higher_is_better) for c in columns}
    kinds |= {"delta_m": (2, False), "delta_p": (2, True)}
    kinds |= {f"delta/{task}": (2, False) for task in delta_tasks}
    cells: dict[str, dict[str, tuple[float, float]]] = {}
    for name, runs in by_row.items():
        cells[name] = {}
        for column in columns:
            values = [r["test"][column.key] * column.scale for r in runs if column.key in r["test"]]
            if values:
                cells[name][column.key] = mean_std(values)
        # Single-task rows are the reference: their Δ is 0 by construction less noise.
        if not any(len(r["tasks"]) > 1 for r in runs):
            continue
        deltas = {
            "delta_m": [delta_m(r["test"], baselines, columns) for r in runs],
            "delta_p": [delta_p(r["test"], baselines, columns) for r in runs],
        }
        for task in delta_tasks:
            deltas[f"delta/{task}"] = [
                delta_per_task(r["test"], baselines, columns).get(task, math.nan) for r in runs
            ]
        for key, values in deltas.items():
            values = [v for v in values if not math.isnan(v)]
            if values:
                cells[name][key] = mean_std(values)
    best = {}
    targets = {c.key: c.target * c.scale for c in columns if c.target is not None}
    for key, (_, higher) in kinds.items():
        means = [cell[key][0] for cell in cells.values() if key in cell]
        if means and key in targets:  # e.g. a coverage: closest to its nominal value
            best[key] = min(means, key=lambda mean, key=key: abs(mean - targets[key]))
        elif means:
            best[key] = max(means) if higher else min(means)
    order = [c.key for c in columns] + ["delta_m"] + [f"delta/{t}" for t in delta_tasks]
    order += ["delta_p"]
    header = ["Loss", "Weights", *[c.title for c in columns], "Δm % (↓)"]
    header += [f"Δ {SHORT.get(t, t)} % (↓)" for t in delta_tasks] + ["Δp % (↑)", "seeds"]
    lines = [
        f"### {experiment.name}: mean ± std over seeds (test split)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, runs in by_row.items():
        row_cells = [name, _row_weights(experiment, name, runs)]
        for key in order:
            value = cells[name].get(key)
            row_cells.append("-" if value is None else _cell(value, kinds[key][0], best.get(key)))
        row_cells.append(f"{len(runs)}/{seeds}")
        lines.append("| " + " | ".join(row_cells) + " |")
    metrics = ", ".join(c.title for c in columns if c.in_delta)
    closest = " (closest to the nominal value for a coverage)" if targets else ""
    lines += [
        "",
        f"Bold: best mean of each column{closest}. Δ against the single-task rows over {metrics}, "
        "each metric's relative change signed so that positive is worse. Δm % (Nash-MTL/"
        "FAMO): the mean over all these metrics, negative = better than training each task "
        "alone. Δ <task> % (mtan): the same per task. Δp % (LibMTL): metrics averaged "
        "within each task, then over tasks, positive = better.",
    ]
    if experiment.published:
        lines += published_lines(experiment.published, columns)
    lines += figure_lines(path.parent, delta_tasks)
    lines += paired_lines(results, experiment, columns, baselines)
    lines += settling_lines(results, [row.name for row in experiment.rows if not row.is_fixed])
    lines += cost_lines(results, [row.name for row in experiment.rows])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def summarize(out_dir: str | Path, experiment: Experiment | None = None) -> list[Path]:
    """Write ``results.csv``, ``table.md`` and the figures of an experiment directory."""
    out_dir = Path(out_dir)
    if experiment is None:
        experiment = load_experiment(out_dir / EXPERIMENT_COPY)
    results = load_results(out_dir)
    if not results:
        return []
    seeds = max(r["seed"] for r in results) + 1
    # The figures first: table.md shows those present beside it.
    figures = plot_tradeoffs(results, experiment, out_dir)
    figures += plot_sigma_evolution(results, experiment, out_dir)
    written = [
        write_csv(results, out_dir / "results.csv"),
        write_table(results, experiment, out_dir / "table.md", seeds),
    ]
    columns = write_columns(results, out_dir / COLUMNS_FILE)
    written += [columns] if columns is not None else []
    return written + figures


def _sections(text: str) -> list[tuple[str, str]]:
    """``(heading line, text)`` of each ``### `` section; the text before the first is ""."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines(keepends=True):
        if line.startswith("### "):
            sections.append((line.rstrip("\n"), []))
        sections[-1][1].append(line)
    return [(heading, "".join(lines)) for heading, lines in sections if lines]


def _keep_run_folder_sections(new: str, old: str) -> str:
    """``new`` with the sections of ``old`` that only the run folders could rebuild, each
    placed before the section that followed it in ``old`` (at the end if none does)."""
    merged = _sections(new)
    old_sections = _sections(old)
    for index, (heading, text) in enumerate(old_sections):
        if not heading.startswith(RUN_FOLDER_SECTIONS) or heading in dict(merged):
            continue
        headings = [h for h, _ in merged]
        later = [h for h, _ in old_sections[index + 1 :] if h in headings]
        at = headings.index(later[0]) if later else len(merged)
        # Sections end with the blank line that separates them from the next one.
        merged.insert(at, (heading, text if text.endswith("\n\n") else text + "\n"))
    return "".join(text for _, text in merged).rstrip("\n") + "\n"


def summarize_from_csv(out_dir: str | Path, experiment: Experiment | None = None) -> list[Path]:
    """Rewrite ``table.md`` of a folder from its ``results.csv``.

    For folders without run folders, such as the docs' copies: nothing is trained or read
    from the runs. The settling check, which needs each run's sigma history, is kept from
    the existing ``table.md``; ``results.csv`` and the figures are left as they are. An
    experiment with a grouping adds its part in
    `mtlscene.experiments.grouping_experiment.summarize_from_csv_with_grouping`.
    """
    out_dir = Path(out_dir)
    if experiment is None:
        experiment = load_experiment(out_dir / EXPERIMENT_COPY)
    results = read_csv(out_dir / "results.csv")
    if not results:
        return []
    table = out_dir / "table.md"
    old = table.read_text(encoding="utf-8") if table.is_file() else ""
    write_table(results, experiment, table, max(r["seed"] for r in results) + 1)
    table.write_text(
        _keep_run_folder_sections(table.read_text(encoding="utf-8"), old), encoding="utf-8"
    )
    return [table]
