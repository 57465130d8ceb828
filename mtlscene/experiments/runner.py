"""Runs every (row, seed) of an experiment, resumably, then writes its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mtlscene.experiments.definition import Experiment, Row, resolve_config
from mtlscene.experiments.single_run import RESULT_FILE

FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class PlannedRun:
    """One (row, seed) of an experiment and where it lives."""

    row: Row
    seed: int
    run_dir: Path

    @property
    def done(self) -> bool:
        return (self.run_dir / RESULT_FILE).is_file()

    @property
    def log_path(self) -> Path:
        return self.run_dir / "run.log"


def plan_runs(experiment: Experiment, out_dir: Path, seeds: int) -> list[PlannedRun]:
    """All runs, row by row, seeds 0..N-1, each in ``out_dir/runs/<row>/seed<k>``."""
    return [
        PlannedRun(row, seed, out_dir / "runs" / row.slug / f"seed{seed}")
        for row in experiment.rows
        for seed in range(seeds)
    ]


def run_args(
    experiment: Experiment, run: PlannedRun, extra_args: list[str], wandb: bool
) -> list[str]:
    """The ``mtlscene fit`` arguments of one run (``test`` adds ``--ckpt_path``)."""
    run_dir = str(run.run_dir)
    args = experiment.base_args() + run.row.config_args() + list(extra_args)
    args += [
        f"--seed_everything={run.seed}",
        f"--data.seed={run.seed}",
        f"--trainer.default_root_dir={run_dir}",
    ]
    if wandb:
        # One W&B group per experiment: the whole comparison in one project view.
        args += ["--config", str(resolve_config("logger/wandb.yaml"))]
        args += [
            f"--trainer.logger.init_args.save_dir={run_dir}",
            f"--trainer.logger.init_args.group={experiment.name}",
            f"--trainer.logger.init_args.name={run.row.slug}-seed{run.seed}",
        ]
    else:
        logger = {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": run_dir, "name": "logs"},
        }
        args += [f"--trainer.logger={json.dumps(logger)}"]
    return args


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _execute(experiment: Experiment, run: PlannedRun, args: list[str], timeout: float | None):
    """Run one (row, seed) in a fresh process; returns an error text or None."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / FAILED_FILE).unlink(missing_ok=True)
    spec = {
        "experiment": experiment.name,
        "row": run.row.name,
        "seed": run.seed,
        "run_dir": str(run.run_dir),
        "args": args,
    }
    spec_path = run.run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with run.log_path.open("w", encoding="utf-8") as log:
        try:
            process = subprocess.run(
                [sys.executable, "-m", "mtlscene.experiments.single_run", str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
    if process.returncode != 0 or not run.done:
        tail = run.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        return f"exit status {process.returncode}: {last[:300]}"
    return None


def run_experiment(
    experiment: Experiment,
    out_dir: str | Path,
    seeds: int | None = None,
    extra_args: list[str] | None = None,
    wandb: bool = False,
    timeout: float | None = None,
    summary: bool = True,
    echo=print,
) -> dict[str, list[PlannedRun]]:
    """Run every (row, seed) not finished yet, then summarise the experiment.

    Finished runs (with ``result.json``) are skipped, so an interrupted experiment resumes
    where it stopped. A failing run is reported with its log path and the others still run;
    running the command again retries it.

    Returns:
        The runs grouped as ``{"done", "skipped", "failed"}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = experiment.seeds if seeds is None else seeds
    runs = plan_runs(experiment, out_dir, seeds)
    outcome: dict[str, list[PlannedRun]] = {"done": [], "skipped": [], "failed": []}
    todo = [run for run in runs if not run.done]
    outcome["skipped"] = [run for run in runs if run.done]
    echo(
        f"experiment {experiment.name}: {len(experiment.rows)} rows x {seeds} seeds = "
        f"{len(runs)} runs, {len(outcome['skipped'])} already finished, {len(todo)} to run "
        f"-> {out_dir}"
    )
    start = time.perf_counter()
    for index, run in enumerate(todo, start=1):
        elapsed = time.perf_counter() - start
        eta = ""
        if index > 1:  # the mean time of this invocation's runs so far
            eta = f", about {_duration(elapsed / (index - 1) * (len(todo) - index + 1))} left"
        echo(f"[{index}/{len(todo)}] {run.row.name} | seed {run.seed} | {_duration(elapsed)}{eta}")
        args = run_args(experiment, run, list(extra_args or []), wandb)
        error = _execute(experiment, run, args, timeout)
        if error is None:
            outcome["done"].append(run)
            continue
        outcome["failed"].append(run)
        failure = {"row": run.row.name, "seed": run.seed, "error": error, "log": str(run.log_path)}
        (run.run_dir / FAILED_FILE).write_text(json.dumps(failure, indent=2), encoding="utf-8")
        echo(f"    FAILED ({error}); log: {run.log_path}")
    echo(
        f"finished {len(outcome['done'])}, skipped {len(outcome['skipped'])}, failed "
        f"{len(outcome['failed'])} in {_duration(time.perf_counter() - start)}"
    )
    for run in outcome["failed"]:
        echo(f"  failed: {run.row.name} seed {run.seed}: see {run.log_path}")
    if summary:
        from mtlscene.experiments.summary import summarize

        for path in summarize(out_dir, experiment):
            echo(f"  wrote {path}")
    return outcome
