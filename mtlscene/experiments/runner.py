"""Runs every (row, seed) of an experiment, resumably, then writes its summary.

Plan (``plan.py``) -> schedule through an executor (``executors/``: ``local`` processes or
``slurm`` jobs) -> collect and summarise (``summary.py``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mtlscene.experiments.definition import Experiment
from mtlscene.experiments.executors.local import LocalExecutor, run_scheduled, threads_per_run
from mtlscene.experiments.grouping_experiment import (
    run_grouping_stage,
    summarize_from_csv_with_grouping,
    summarize_with_grouping,
)
from mtlscene.experiments.plan import (
    FAILED_FILE,
    PlannedRun,
    RunJob,
    duration,
    plan_runs,
    record_failure,
    run_args,
)
from mtlscene.experiments.projection import project_wall_time
from mtlscene.experiments.reuse import (
    OutputFolderError,
    adopt_finished_elsewhere,
    check_finished_runs_match,
)
from mtlscene.experiments.selection import check_experiment
from mtlscene.experiments.summary import summarize, summarize_from_csv
from mtlscene.filelock import LockedError, exclusive_lock

LOCK_FILE = "runner.lock"
__all__ = [
    "FAILED_FILE",
    "OutputFolderError",
    "PlannedRun",
    "plan_runs",
    "record_failure",
    "run_args",
    "run_experiment",
    "run_scheduled",
    "summarize_experiment",
    "threads_per_run",
]


@contextlib.contextmanager
def output_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for one runner: two writing the same run folders would clobber them."""
    try:
        with exclusive_lock(out_dir / LOCK_FILE, wait=False):
            yield
    except LockedError as error:
        raise OutputFolderError(
            f"{out_dir}: another mtlscene-experiment run (pid {error.holder}) is writing into "
            "this folder; wait for it to finish or pass another --out"
        ) from None


def run_experiment(
    experiment: Experiment,
    out_dir: str | Path,
    seeds: int | None = None,
    extra_args: list[str] | None = None,
    wandb: bool = False,
    timeout: float | None = None,
    summary: bool = True,
    echo=print,
    jobs: int = 1,
    reuse: Sequence[str | Path] = (),
    keep_checkpoints: bool = False,
    executor=None,
    steps_per_second: float | None = None,
) -> dict[str, list[PlannedRun]]:
    """Run every (row, seed) not finished yet, then summarise the experiment.

    Finished runs (with ``result.json``) are skipped, so an interrupted experiment resumes
    where it stopped. A failing run is reported with its log path and the others still run;
    running the command again retries it. ``jobs`` runs go at once, each in its own
    process with an even share of the CPU threads (unless OMP_NUM_THREADS is set). A run
    that an experiment folder in ``reuse`` already finished with the same arguments is
    adopted from there instead of trained again. A run deletes its checkpoints once its
    result is written unless ``keep_checkpoints``. ``executor`` runs them (an object of
    ``mtlscene.experiments.executors``; default: a local one with ``jobs`` and ``timeout``).
    Before the runs start it prints their projected wall time (``projection.py``), from
    ``steps_per_second`` or else the step time this experiment's finished runs measured.
    An experiment that selects by a score (a grouping stage, early stopping) on the images
    it reports is refused first (`SelectionError`).

    Returns:
        The runs grouped as ``{"done", "skipped", "reused", "failed"}``.
    """
    if executor is None:
        executor = LocalExecutor(jobs=jobs, timeout=timeout)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = experiment.seeds if seeds is None else seeds
    extra_args = list(extra_args or [])
    check_experiment(experiment, extra_args)  # before anything runs
    with output_folder_lock(out_dir):
        runs = plan_runs(experiment, out_dir, seeds)
        planned_args = {run.run_dir: run_args(experiment, run, extra_args, wandb) for run in runs}
        check_finished_runs_match(runs, planned_args)
        outcome: dict[str, list[PlannedRun]] = {"done": [], "reused": [], "failed": []}
        outcome["skipped"] = [run for run in runs if run.done]
        todo = [run for run in runs if not run.done]
        if reuse:
            outcome["reused"] = adopt_finished_elsewhere(todo, reuse, experiment, planned_args)
            todo = [run for run in todo if run not in outcome["reused"]]
        reused = f", {len(outcome['reused'])} reused" if reuse else ""
        echo(
            f"experiment {experiment.name}: {len(experiment.rows)} rows x {seeds} seeds = "
            f"{len(runs)} runs, {len(outcome['skipped'])} already finished{reused}, {len(todo)} "
            f"to run -> {out_dir}"
        )
        if wandb and outcome["skipped"]:
            echo(
                f"note: the {len(outcome['skipped'])} finished runs are not logged to W&B again; "
                "their logs stay in their run folders"
            )
        if todo:
            finished = [run for run in runs if run.done]
            todo_args = [planned_args[run.run_dir] for run in todo]
            echo(project_wall_time(finished, todo_args, executor, steps_per_second))
        start = time.perf_counter()
        jobs_todo = [
            RunJob(experiment.name, run, planned_args[run.run_dir], keep_checkpoints)
            for run in todo
        ]
        done, failed = executor.run_all(jobs_todo, echo)
        outcome["done"], outcome["failed"] = done, failed
        echo(
            f"finished {len(done)}, skipped {len(outcome['skipped'])}, failed "
            f"{len(failed)} in {duration(time.perf_counter() - start)}"
        )
        if experiment.grouping is not None:  # train the groups the affinity suggests
            experiment, grouped = run_grouping_stage(
                experiment,
                out_dir,
                seeds,
                extra_args,
                wandb,
                executor,
                echo,
                keep_checkpoints,
                reuse,
            )
            for key, runs in grouped.items():
                outcome[key] += runs
        for run in outcome["failed"]:
            failure = json.loads((run.run_dir / FAILED_FILE).read_text(encoding="utf-8"))
            why = failure.get("error", "no cause recorded")
            echo(f"  failed: {run.row.name} seed {run.seed}: {why}; log: {failure['log']}")
        if summary:
            for path in summarize_experiment(out_dir, experiment):
                echo(f"  wrote {path}")
        return outcome


def summarize_experiment(
    out_dir: Path, experiment: Experiment, from_csv: bool = False
) -> list[Path]:
    """The summary of ``out_dir``; an experiment with a grouping adds its group rows and report.

    Args:
        out_dir: the experiment's output folder.
        experiment: its definition.
        from_csv: rewrite the tables from ``results.csv`` alone (a copy without run folders).
    """
    if experiment.grouping is None:
        return (summarize_from_csv if from_csv else summarize)(out_dir, experiment)
    if from_csv:
        return summarize_from_csv_with_grouping(out_dir, experiment)
    return summarize_with_grouping(out_dir, experiment)
