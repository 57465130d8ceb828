"""An experiment's ``grouping`` stage: measure affinity, suggest task groups, train and check.

An experiment with a ``grouping`` key::

    grouping: {measured_row: 3-task uncertainty, groups: 2}
    grouping: {measured_row: 3-task uncertainty, groups: 2, check: all}

(parsed into `mtlscene.experiments.definition.GroupingSpec`) has one row
(``measured_row``) that trains all tasks with the `TaskAffinity` callback. Once every seed
of that row has finished, the runs' ``task_affinity.json`` (in each run's ``log_dir``) are
averaged, the partition of the tasks into ``groups`` disjoint groups with the highest total
affinity is chosen, and beside it TAG's overlapping selection of ``groups`` groups (each
task served by its best chosen group; `mtlscene.relationships.grouping`). Each group
of two or more tasks of either suggestion (of the overlapping one: those serving a task) is
trained as an extra row over the same seeds, with the measured row's weighting (singleton
groups are the single-task rows). With ``check: all`` every group of every partition into
``groups`` groups is trained, so the report can set the affinity's ranking of the groupings
beside their trained ranking (affordable for a few tasks: 3 tasks, K = 2 is 3 pairs). The
measured runs' files are the stored matrix: running the command again finds the same
grouping and skips the finished group runs.

``grouping.json`` and ``grouping.md`` + ``affinity.png`` sit beside the experiment's
``table.md``: the mean matrix over seeds, the ranked groupings, and the check of the
suggestion against one network per task and one for all.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mtlscene.experiments.columns import delta_columns, experiment_columns
from mtlscene.experiments.definition import Experiment, Row, load_experiment
from mtlscene.experiments.delta import delta_m, single_task_baselines
from mtlscene.experiments.paired_table import versus
from mtlscene.experiments.plan import PlannedRun, RunJob, plan_runs, run_args
from mtlscene.experiments.results_csv import read_csv
from mtlscene.experiments.reuse import adopt_finished_elsewhere, check_finished_runs_match
from mtlscene.experiments.single_run import RESULT_FILE
from mtlscene.experiments.statistics import format_mean_std as _cell
from mtlscene.experiments.statistics import mean_std as _mean_std
from mtlscene.experiments.summary import (
    EXPERIMENT_COPY,
    load_results,
    summarize,
    summarize_from_csv,
)
from mtlscene.relationships.affinity_figure import plot_affinity
from mtlscene.relationships.grouping import (
    groupings_by_size,
    rank_groupings,
    rank_overlapping_groupings,
)

GROUPING_FILE = "grouping.json"
REPORT_FILE = "grouping.md"
FIGURE_FILE = "affinity.png"
AFFINITY_FILE = "task_affinity.json"
GROUP_ROW_PREFIX = "Group: "
TOP_GROUPINGS = 5


def _measured_row(experiment: Experiment) -> Row | None:
    return next((r for r in experiment.rows if r.name == experiment.grouping.measured_row), None)


def _read_matrices(runs: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """Each measured run's ``task_affinity.json``; a clear error naming what is missing."""
    matrices = []
    for run in runs:
        result = json.loads((run.run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        path = Path(result.get("log_dir", run.run_dir)) / AFFINITY_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"grouping: {run.row.name!r} seed {run.seed} wrote no {AFFINITY_FILE} "
                f"(looked in {path.parent}); the measured row needs the TaskAffinity callback: "
                "add `configs: [diagnostics/affinity.yaml]` to it and delete its run folders"
            )
        matrices.append({"seed": run.seed, **json.loads(path.read_text(encoding="utf-8"))})
    tasks = matrices[0]["tasks"]
    if any(m["tasks"] != tasks for m in matrices):
        raise ValueError(f"grouping: the measured runs disagree on the task order: {matrices}")
    return matrices


def decide_grouping(experiment: Experiment, out_dir: Path, seeds: int) -> dict[str, Any] | None:
    """The mean matrix over the measured row's seeds and the ranked groupings.

    None while a seed of the measured row is unfinished (or the row is not being run).
    """
    row = _measured_row(experiment)
    if row is None:
        return None
    runs = [r for r in plan_runs(experiment, out_dir, seeds) if r.row == row]
    if not all(run.done for run in runs):
        return None
    matrices = _read_matrices(runs)
    tasks = matrices[0]["tasks"]
    size = len(tasks)
    cells = [[[m["matrix"][i][j] for m in matrices] for j in range(size)] for i in range(size)]
    mean = [[statistics.fmean(cell) for cell in row_cells] for row_cells in cells]
    std = [
        [statistics.stdev(cell) if len(cell) > 1 else 0.0 for cell in row_cells]
        for row_cells in cells
    ]
    k = experiment.grouping.groups
    if k > size:
        raise ValueError(
            f"grouping.groups is {k} but the measured row trains {size} tasks ({tasks})"
        )
    ranked = {
        n: [
            {"groups": [list(g) for g in grouping.groups], "score": grouping.score}
            for grouping in groupings
        ]
        for n, groupings in groupings_by_size(mean, tasks).items()
    }
    best = rank_groupings(mean, tasks, k)[0]
    try:
        overlapping = _overlapping(rank_overlapping_groupings(mean, tasks, k))
    except ValueError as error:  # too many choices to enumerate: the partition still stands
        overlapping = {"refused": str(error)}
    return {
        "measured_row": row.name,
        "groups": k,
        "tasks": tasks,
        "seeds": [m["seed"] for m in matrices],
        "steps_per_run": [m["count"] for m in matrices],
        "lookahead": matrices[0].get("lookahead", ""),
        "mean": mean,
        "std": std,
        "per_seed": [m["matrix"] for m in matrices],
        "ranked": ranked,
        "suggested": {"groups": [list(g) for g in best.groups], "score": best.score},
        "overlapping": overlapping,
        "check": experiment.grouping.check,
    }


def _overlapping(ranked: Sequence[Any]) -> dict[str, Any]:
    """TAG's overlapping selection as stored: the best choice and the top few."""

    def entry(grouping) -> dict[str, Any]:
        groups = [list(g) for g in grouping.groups]
        return {
            "groups": groups,
            "score": grouping.score,
            "serves": {task: groups[index] for task, index in grouping.serves},
        }

    return {**entry(ranked[0]), "ranked": [entry(g) for g in ranked[:TOP_GROUPINGS]]}


def group_row_name(group: Sequence[str]) -> str:
    return GROUP_ROW_PREFIX + " + ".join(group)


def checked_groupings(decision: Mapping[str, Any]) -> list[list[list[str]]]:
    """The groupings whose groups are trained: the suggested one, or every one of K groups."""
    if decision.get("check", "suggested") != "all":
        return [decision["suggested"]["groups"]]
    ranked = decision["ranked"]
    k = decision["groups"]
    return [g["groups"] for g in ranked.get(k, ranked.get(str(k), []))]


def group_rows(experiment: Experiment, decision: Mapping[str, Any]) -> list[Row]:
    """One row per checked group of two or more tasks, trained like the measured row.

    The measured row's diagnostics configs (``diagnostics/...``) are left out: they change
    no weight (tested) and would only cost time.
    """
    measured = _measured_row(experiment)
    rows = []
    groups = [group for grouping in checked_groupings(decision) for group in grouping]
    # TAG's overlapping suggestion: the groups that serve a task (one serving none is idle).
    groups += list((decision.get("overlapping") or {}).get("serves", {}).values())
    every_task = set(decision.get("tasks", ()))
    for index, group in enumerate(groups):
        # All the tasks together is the measured row itself (its diagnostics change no weight).
        if len(group) < 2 or group in groups[:index] or set(group) == every_task:
            continue
        weights = None
        if measured.weights is not None:
            weights = {task: measured.weights[task] for task in group if task in measured.weights}
        rows.append(
            Row(
                name=group_row_name(group),
                configs=tuple(c for c in measured.configs if Path(c).parent.name != "diagnostics"),
                weighting=measured.weighting,
                tasks=tuple(group),
                weights=weights,
                overrides=measured.overrides,
            )
        )
    return rows


def with_group_rows(experiment: Experiment, out_dir: Path) -> Experiment:
    """The experiment with the group rows of the grouping stored in ``out_dir`` (if any)."""
    path = out_dir / GROUPING_FILE
    if experiment.grouping is None or not path.is_file():
        return experiment
    decision = json.loads(path.read_text(encoding="utf-8"))
    known = {row.name for row in experiment.rows}
    extra = [row for row in group_rows(experiment, decision) if row.name not in known]
    return replace(experiment, rows=experiment.rows + tuple(extra))


def run_grouping_stage(
    experiment: Experiment,
    out_dir: Path,
    seeds: int,
    extra_args: list[str],
    wandb: bool,
    executor,
    echo: Callable[[str], None],
    keep_checkpoints: bool = False,
    reuse: Sequence[str | Path] = (),
) -> tuple[Experiment, dict[str, list[PlannedRun]]]:
    """Decide the grouping and train its group rows (skipping finished ones).

    Returns the experiment with the group rows added (for the summary) and the group runs
    as ``{"done", "skipped", "reused", "failed"}``.
    """
    outcome: dict[str, list[PlannedRun]] = {"done": [], "skipped": [], "reused": [], "failed": []}
    try:
        decision = decide_grouping(experiment, out_dir, seeds)
    except (FileNotFoundError, ValueError) as error:
        echo(f"grouping: {error}")
        return experiment, outcome
    if decision is None:
        if _measured_row(experiment) is not None:
            echo(
                f"grouping: waits for every seed of {experiment.grouping.measured_row!r}; "
                "run the command again once they have finished"
            )
        return experiment, outcome
    (out_dir / GROUPING_FILE).write_text(json.dumps(decision, indent=2), encoding="utf-8")
    suggested = " ".join("{" + ", ".join(g) + "}" for g in decision["suggested"]["groups"])
    echo(
        f"grouping: affinity of {len(decision['seeds'])} run(s) of "
        f"{decision['measured_row']!r} suggests {suggested} "
        f"(score {decision['suggested']['score']:.4f})"
    )
    overlapping = decision["overlapping"]
    if "groups" in overlapping:
        echo(
            f"grouping: TAG's overlapping selection suggests {_label(overlapping['groups'])} "
            f"(score {overlapping['score']:.4f})"
        )
    expanded = with_group_rows(experiment, out_dir)
    new_rows = expanded.rows[len(experiment.rows) :]
    if not new_rows:
        return expanded, outcome
    runs = plan_runs(replace(experiment, rows=new_rows), out_dir, seeds)
    planned = {run.run_dir: run_args(experiment, run, extra_args, wandb) for run in runs}
    check_finished_runs_match(runs, planned)
    outcome["skipped"] = [run for run in runs if run.done]
    todo = [run for run in runs if not run.done]
    if reuse and todo:
        outcome["reused"] = adopt_finished_elsewhere(todo, reuse, experiment, planned)
        todo = [run for run in todo if run not in outcome["reused"]]
    echo(
        f"grouping: {len(new_rows)} group row(s) x {seeds} seeds = {len(runs)} runs, "
        f"{len(outcome['skipped'])} already finished, {len(todo)} to run"
    )
    jobs = [RunJob(experiment.name, run, planned[run.run_dir], keep_checkpoints) for run in todo]
    outcome["done"], outcome["failed"] = executor.run_all(jobs, echo)
    return expanded, outcome


# --- the report ---------------------------------------------------------------------------


def _deltas_by_seed(by_task, seeds, baselines, columns) -> dict[int, float]:
    """Seed -> Δm % of a setup (each task's metric from the run that trained it)."""
    merged = {seed: _merged_metrics(by_task, seed) for seed in seeds}
    return {seed: delta_m(m, baselines, columns) for seed, m in merged.items() if m}


def _runs_of_grouping(
    results: Sequence[dict[str, Any]], groups: Sequence[Sequence[str]], single: Mapping
) -> dict[str, dict[int, dict[str, Any]]]:
    """Task -> seed -> the run of the group holding the task (a task alone: its single run)."""
    by_task: dict[str, dict[int, dict[str, Any]]] = {}
    for group in groups:
        if len(group) == 1:
            by_task[group[0]] = single[group[0]]
            continue
        runs = {r["seed"]: r for r in results if r["row"] == group_row_name(group)}
        for task in group:
            by_task[task] = runs
    return by_task


def _runs_of_serving(
    results: Sequence[dict[str, Any]], decision: Mapping[str, Any], single: Mapping
) -> dict[str, dict[int, dict[str, Any]]]:
    """Task -> seed -> the run of the group serving the task (overlapping selection).

    A singleton group is the task's single-task run, all the tasks together the measured row.
    """
    by_task = {}
    for task, group in decision["overlapping"]["serves"].items():
        if len(group) == 1:
            by_task[task] = single[task]
            continue
        row = decision["measured_row"] if set(group) == set(decision["tasks"]) else None
        row = row or group_row_name(group)
        by_task[task] = {r["seed"]: r for r in results if r["row"] == row}
    return by_task


def _runs_by_setup(
    results: Sequence[dict[str, Any]], decision: Mapping[str, Any]
) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """Setup -> task -> seed -> the result of the run that trained that task there.

    Setups: ``one`` (each task alone), ``all`` (the measured row), ``grouping`` (the run of
    the suggested group holding the task; a task alone in its group is its single-task run).
    """
    tasks = decision["tasks"]
    single = {t: {r["seed"]: r for r in results if r["tasks"] == [t]} for t in tasks}
    measured = {r["seed"]: r for r in results if r["row"] == decision["measured_row"]}
    return {
        "one": single,
        "all": {t: measured for t in tasks},
        "grouping": _runs_of_grouping(results, decision["suggested"]["groups"], single),
    }


def _merged_metrics(by_task: Mapping[str, Mapping[int, dict]], seed: int) -> dict[str, float]:
    """One seed's test metrics, each task's taken from the run that trained it."""
    merged: dict[str, float] = {}
    for task, runs in by_task.items():
        result = runs.get(seed)
        if result is None:
            return {}
        merged.update({k: v for k, v in result["test"].items() if k.startswith(f"test/{task}/")})
    return merged


def _networks(by_task: Mapping[str, Mapping[int, dict]]) -> tuple[int, float | None]:
    """The number of distinct networks and their parameters summed (None if unrecorded)."""
    rows: dict[str, dict] = {}
    for runs in by_task.values():
        for result in runs.values():
            rows.setdefault(result["row"], result)
            break
    parameters = [(r.get("cost") or {}).get("parameters") for r in rows.values()]
    total = None if not parameters or None in parameters else float(sum(parameters))
    return len(rows), total


def _label(groups: Sequence[Sequence[str]]) -> str:
    return " ".join("{" + ", ".join(g) + "}" for g in groups)


def _overlapping_lines(results: Sequence[dict[str, Any]], decision: Mapping[str, Any]) -> list:
    """TAG's overlapping selection: its ranking, the suggestion and, once trained, its Δm."""
    overlapping = decision.get("overlapping")
    if not overlapping:  # a grouping.json written before the overlapping selection
        return []
    k = decision["groups"]
    lines = ["#### TAG's overlapping selection", ""]
    if "refused" in overlapping:
        return lines + [f"Not computed: {overlapping['refused']}.", ""]
    lines += [
        f"TAG (Fifty et al. 2021) chooses {k} groups among all groups of tasks, every task in "
        "at least one, so groups may overlap: a task trained in several groups is served "
        "(evaluated) by the chosen group that scores it best, and the score is the sum over "
        "tasks of that best score (same group score as above). The best "
        f"{TOP_GROUPINGS} choices of {k} groups:",
        "",
        "| rank | groups | each task served by | score |",
        "|---|---|---|---|",
    ]
    for rank, entry in enumerate(overlapping["ranked"], start=1):
        serves = "; ".join(f"{t}: {_label([g])}" for t, g in entry["serves"].items())
        lines.append(f"| {rank} | {_label(entry['groups'])} | {serves} | {entry['score']:+.4f} |")
    columns = experiment_columns(results)
    baselines = single_task_baselines(results, columns)
    tasks = decision["tasks"]
    single = {t: {r["seed"]: r for r in results if r["tasks"] == [t]} for t in tasks}
    by_task = _runs_of_serving(results, decision, single)
    seeds = sorted({r["seed"] for r in results})
    merged = (_merged_metrics(by_task, seed) for seed in seeds)
    deltas = [delta_m(m, baselines, columns) for m in merged if m]
    if deltas:
        partition = _cell(_partition_deltas(results, decision, baselines, columns), 2)
        trained = (
            "Trained, each task's metric from the run of the group serving it: Δm % (↓) vs "
            f"one per task {_cell(deltas, 2)}, against {partition} for the suggested partition."
        )
    else:
        trained = "Not trained yet (its group rows have not finished)."
    lines += [
        "",
        f"**Overlapping suggestion for {k} groups: {_label(overlapping['groups'])}** "
        f"(score {overlapping['score']:+.4f}; the best partition scores "
        f"{decision['suggested']['score']:+.4f}). {trained}",
        "",
    ]
    return lines


def _partition_deltas(results, decision, baselines, columns) -> list[float]:
    """Δm % per seed of the suggested partition (each task from its group's run)."""
    by_task = _runs_by_setup(results, decision)["grouping"]
    merged = (_merged_metrics(by_task, seed) for seed in sorted({r["seed"] for r in results}))
    return [delta_m(m, baselines, columns) for m in merged if m]


def report_lines(results: Sequence[dict[str, Any]], decision: Mapping[str, Any]) -> list[str]:
    """``grouping.md``: the matrix, the ranked groupings and the check of the suggestion."""
    tasks = decision["tasks"]
    lines = [
        f"### Task affinity and grouping: {decision['measured_row']}",
        "",
        f"Lookahead affinity Z(i → j) = 1 − L_j(after a step on task i alone) / L_j(before), "
        f"on the training batch every few steps ({decision['lookahead'] or 'sgd'} step), "
        f"averaged over training, then mean ± std over seeds {decision['seeds']} "
        f"({decision['steps_per_run']} measurements per run). Row i: the task that stepped; "
        "column j: the task whose loss is read. Positive: i's step helps j.",
        "",
        "| i \\ j | " + " | ".join(tasks) + " |",
        "|" + "---|" * (len(tasks) + 1),
    ]
    for i, source in enumerate(tasks):
        cells = [
            f"{decision['mean'][i][j]:+.4f} ± {decision['std'][i][j]:.4f}"
            for j in range(len(tasks))
        ]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"![affinity]({FIGURE_FILE})",
        "",
        "#### Groupings ranked by total affinity",
        "",
        "Disjoint groups (a partition: every task trained once). A task's score is the mean "
        "affinity onto it from the other members of its group (0 alone; TAG's group score); "
        "a grouping's score is the sum over tasks. TAG's own selection lets groups overlap "
        f"(below). The best {TOP_GROUPINGS} partitions of each number of groups:",
        "",
        "| groups | rank | grouping | score |",
        "|---|---|---|---|",
    ]
    suggested = [list(g) for g in decision["suggested"]["groups"]]
    for k, ranked in sorted(decision["ranked"].items(), key=lambda item: int(item[0])):
        for rank, grouping in enumerate(ranked[:TOP_GROUPINGS], start=1):
            label = " ".join("{" + ", ".join(g) + "}" for g in grouping["groups"])
            mark = " (suggested)" if grouping["groups"] == suggested else ""
            lines.append(f"| {k} | {rank} | {label}{mark} | {grouping['score']:+.4f} |")
    label = " ".join("{" + ", ".join(g) + "}" for g in suggested)
    lines += ["", f"**Suggested for {decision['groups']} groups: {label}.**", ""]
    lines += _overlapping_lines(results, decision)

    columns = experiment_columns(results)
    metrics = [c for c in delta_columns(columns) if c.task in tasks]
    baselines = single_task_baselines(results, columns)
    setups = _runs_by_setup(results, decision)
    names = {"one": "one per task", "all": "all in one", "grouping": "suggested grouping"}
    lines += [
        "#### The check: the suggestion trained against one network per task and one for all",
        "",
        "Test split, mean ± std over seeds; each task's metric from the run that trained it "
        "in that setup.",
        "",
        "| task | metric | " + " | ".join(names.values()) + " |",
        "|---|---|---|---|---|",
    ]
    for column in metrics:
        cells = []
        for setup in names:
            runs = setups[setup].get(column.task, {})
            values = [
                r["test"][column.key] * column.scale
                for r in runs.values()
                if column.key in r["test"]
            ]
            cells.append(_cell(values, column.digits))
        lines.append(f"| {column.task} | {column.title} | " + " | ".join(cells) + " |")
    seeds = sorted({r["seed"] for r in results})
    summary_cells = {"Δm % (↓) vs one per task": [], "networks": [], "parameters (M)": []}
    for setup in names:
        deltas = []
        for seed in seeds:
            merged = _merged_metrics(setups[setup], seed)
            if merged:
                deltas.append(delta_m(merged, baselines, columns))
        summary_cells["Δm % (↓) vs one per task"].append(_cell(deltas, 2))
        count, parameters = _networks(setups[setup])
        summary_cells["networks"].append(str(count))
        summary_cells["parameters (M)"].append(
            "-" if parameters is None else f"{parameters / 1e6:.2f}"
        )
    for title, cells in summary_cells.items():
        lines.append(f"| | {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Δm % (Nash-MTL/FAMO): the mean relative change of the tasks' metrics against the mean "
        "of the single-task runs, signed so that positive is worse; per seed, each task's "
        "metric taken from its setup's run of that seed (one per task: the seed-to-seed noise "
        "of the reference). Parameters: the networks' total, from the runs' recorded cost.",
    ]
    lines += _paired_check_lines(setups, seeds, baselines, columns)
    if decision.get("check") == "all":
        single = setups["one"]

        # A choice among the trained groupings is made on the validation (selection)
        # split, never on test: the same Δm on each run's final validation metrics.
        on_val = [{**r, "test": _val_as_test(r.get("val", {}))} for r in results]
        val_single = {t: {r["seed"]: r for r in on_val if r["tasks"] == [t]} for t in tasks}
        val_baselines = single_task_baselines(on_val, columns)

        def trained_delta(groups, split: str = "test") -> list[float]:
            runs, singles, reference = (
                (on_val, val_single, val_baselines)
                if split == "val"
                else (results, single, baselines)
            )
            by_task = _runs_of_grouping(runs, groups, singles)
            merged = (_merged_metrics(by_task, seed) for seed in seeds)
            return [delta_m(m, reference, columns) for m in merged if m]

        lines += [
            "",
            f"#### Every grouping into {decision['groups']} groups, trained",
            "",
            "Does the affinity rank the groupings as training does? Rank and score by "
            "affinity (as above) beside the trained Δm % (mean ± std over seeds, lower is "
            "better) on the validation split, which a choice among them uses, and on test, "
            "which reports it:",
            "",
            "| affinity rank | grouping | affinity score | Δm % on validation (↓) | "
            "trained Δm % (↓) |",
            "|---|---|---|---|---|",
        ]
        chosen, best = None, math.inf
        for groups in checked_groupings(decision):
            mean = _mean_std(trained_delta(groups, "val"))[0]
            if not math.isnan(mean) and mean < best:
                chosen, best = groups, mean
        for rank, groups in enumerate(checked_groupings(decision), start=1):
            label = " ".join("{" + ", ".join(g) + "}" for g in groups)
            score = next(
                g["score"]
                for g in decision["ranked"].get(
                    decision["groups"], decision["ranked"].get(str(decision["groups"]), [])
                )
                if g["groups"] == groups
            )
            selection = _cell(trained_delta(groups, "val"), 2)
            lines.append(
                f"| {rank} | {label} | {score:+.4f} | {selection} | "
                f"{_cell(trained_delta(groups), 2)} |"
            )
        all_in_one = _deltas_by_seed(setups["all"], seeds, baselines, columns)
        sentences = [
            versus(
                _label(groups),
                "all in one",
                _deltas_by_seed(
                    _runs_of_grouping(results, groups, single), seeds, baselines, columns
                ),
                all_in_one,
            )
            for groups in checked_groupings(decision)
        ]
        if any(sentences):
            lines += [
                "",
                "On test, paired by seed (each grouping's Δm minus all in one's, 95 % paired t "
                "interval, negative is better):",
                "",
                *(f"- {sentence}." for sentence in sentences if sentence is not None),
            ]
        if chosen is not None:
            label = " ".join("{" + ", ".join(g) + "}" for g in chosen)
            lines += [
                "",
                f"Chosen on the validation split: {label}, reported on test at "
                f"{_cell(trained_delta(chosen), 2)} Δm %.",
            ]
    return lines


def _paired_check_lines(setups, seeds, baselines, columns) -> list[str]:
    """The suggested grouping against one network per task and one for all, seed by seed."""
    deltas = {
        setup: _deltas_by_seed(setups[setup], seeds, baselines, columns)
        for setup in ("one", "all", "grouping")
    }
    sentences = [
        versus("suggested grouping", name, deltas["grouping"], deltas[setup])
        for setup, name in (("all", "all in one"), ("one", "one per task"))
    ]
    sentences = [f"- {s}." for s in sentences if s is not None]
    if not sentences:
        return []
    return [
        "",
        "Paired by seed (Δm of the suggestion minus the other setup's, 95 % paired t "
        "interval, negative is better):",
        "",
        *sentences,
    ]


def _val_as_test(metrics: Mapping[str, float]) -> dict[str, float]:
    # Δm's columns are keyed by test/ metrics: the same names on validation values.
    return {"test/" + key[4:]: value for key, value in metrics.items() if key.startswith("val/")}


def write_grouping_report(out_dir: str | Path, experiment: Experiment) -> list[Path]:
    """``grouping.md`` and ``affinity.png`` from ``grouping.json`` and the runs' results."""
    out_dir = Path(out_dir)
    path = out_dir / GROUPING_FILE
    if experiment.grouping is None or not path.is_file():
        return []
    decision = json.loads(path.read_text(encoding="utf-8"))
    names = {row.name for row in experiment.rows}
    results = [r for r in load_results(out_dir) if r["row"] in names and "test" in r]
    figure = plot_affinity(
        decision["tasks"],
        decision["mean"],
        out_dir / FIGURE_FILE,
        std=decision["std"],
        title=f"Lookahead affinity Z(i → j), mean ± std over {len(decision['seeds'])} seeds",
    )
    report = out_dir / REPORT_FILE
    report.write_text("\n".join(report_lines(results, decision)) + "\n", encoding="utf-8")
    return [report, figure]


def summarize_with_grouping(out_dir: Path, experiment: Experiment | None = None) -> list[Path]:
    """The usual summary of ``out_dir`` (group rows included) plus the grouping report."""
    if experiment is None:
        experiment = load_experiment(out_dir / EXPERIMENT_COPY)
    experiment = with_group_rows(experiment, out_dir)
    return summarize(out_dir, experiment) + write_grouping_report(out_dir, experiment)


def summarize_from_csv_with_grouping(
    out_dir: str | Path, experiment: Experiment | None = None
) -> list[Path]:
    """``summarize_from_csv`` with the group rows in ``table.md``, plus ``grouping.md``.

    For a copy of the folder without its run folders, as ``summarize_from_csv``.
    """
    out_dir = Path(out_dir)
    if experiment is None:
        experiment = load_experiment(out_dir / EXPERIMENT_COPY)
    experiment = with_group_rows(experiment, out_dir)
    written = summarize_from_csv(out_dir, experiment)
    grouping = out_dir / GROUPING_FILE
    if not written or experiment.grouping is None or not grouping.is_file():
        return written
    names = {row.name for row in experiment.rows}
    decision = json.loads(grouping.read_text(encoding="utf-8"))
    results = [r for r in read_csv(out_dir / "results.csv") if r["row"] in names]
    report = out_dir / REPORT_FILE
    report.write_text("\n".join(report_lines(results, decision)) + "\n", encoding="utf-8")
    return [*written, report]
