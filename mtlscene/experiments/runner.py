"""Runs every (row, seed) of an experiment, resumably, then writes its summary."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlscene.experiments.definition import Experiment, Row, resolve_config
from mtlscene.experiments.reuse import SPEC_FILE, adopt, finished_runs, run_identity, write_spec
from mtlscene.experiments.single_run import RESULT_FILE
from mtlscene.filelock import LockedError, exclusive_lock

FAILED_FILE = "failed.json"
LOCK_FILE = "runner.lock"


class OutputFolderError(RuntimeError):
    """The ``--out`` folder cannot take this experiment as asked (the message says why)."""


_CHILD = "import sys; from mtlscene.experiments.single_run import main; main(sys.argv[1:])"


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


def check_finished_runs_match(runs: Sequence[PlannedRun], planned_args: dict) -> None:
    """Refuse to count a finished run as done when it trained something else.

    Skipping finished runs is how an experiment resumes; a run finished with other
    arguments (another budget ``--config``, another override) would otherwise land in this
    experiment's table as if it were one of its runs.
    """
    mismatched = []
    for run in runs:
        spec_path = run.run_dir / SPEC_FILE
        if not run.done or not spec_path.is_file():
            continue
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        before = run_identity(spec["args"], spec["run_dir"])
        now = run_identity(planned_args[run.run_dir], run.run_dir)
        if before != now:
            mismatched.append((run, sorted(set(before) - set(now)), sorted(set(now) - set(before))))
    if not mismatched:
        return
    run, gone, new = mismatched[0]
    raise OutputFolderError(
        f"{len(mismatched)} finished run(s) in {run.run_dir.parent.parent.parent} were trained "
        f"with other arguments than this command gives them, e.g. {run.run_dir}: it had "
        f"{' '.join(gone) or '(nothing else)'} where this command has "
        f"{' '.join(new) or '(nothing else)'}. Nothing was run or changed: pass another --out "
        "for the new settings, or delete those run folders to train them again."
    )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def threads_per_run(jobs: int) -> int:
    """CPU threads each of ``jobs`` concurrent runs gets: the cores shared out evenly."""
    return max(1, (os.cpu_count() or 1) // jobs)


class _RunningRun:
    """One (row, seed) being trained in its own process, with its log open."""

    def __init__(
        self,
        experiment: Experiment,
        run: PlannedRun,
        args: list[str],
        env,
        timeout,
        keep_checkpoints: bool = False,
    ):
        run.run_dir.mkdir(parents=True, exist_ok=True)
        (run.run_dir / FAILED_FILE).unlink(missing_ok=True)
        spec_path = write_spec(
            run.run_dir,
            experiment.name,
            run.row.name,
            run.seed,
            args,
            keep_checkpoints=keep_checkpoints,
        )
        self.run = run
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.timed_out = False
        self._log = run.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            # Not ``-m``: the package imports this module first and runpy would warn.
            [sys.executable, "-c", _CHILD, str(spec_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def poll(self) -> bool:
        """Whether the process has ended (killing it first when past its deadline)."""
        if self.process.poll() is not None:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            self.stop()
            return True
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def error(self) -> str | None:
        """Why the run failed, or None when it wrote its result."""
        self._log.close()
        if self.timed_out:
            return f"timed out after {self.timeout:.0f} s"
        if self.process.returncode == 0 and self.run.done:
            return None
        lines = self.run.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        return f"exit status {self.process.returncode}: {last[:300]}"


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
) -> dict[str, list[PlannedRun]]:
    """Run every (row, seed) not finished yet, then summarise the experiment.

    Finished runs (with ``result.json``) are skipped, so an interrupted experiment resumes
    where it stopped. A failing run is reported with its log path and the others still run;
    running the command again retries it. ``jobs`` runs go at once, each in its own
    process with an even share of the CPU threads (unless OMP_NUM_THREADS is set). A run
    that an experiment folder in ``reuse`` already finished with the same arguments is
    adopted from there instead of trained again. A run deletes its checkpoints once its
    result is written unless ``keep_checkpoints``.

    Returns:
        The runs grouped as ``{"done", "skipped", "reused", "failed"}``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = experiment.seeds if seeds is None else seeds
    extra_args = list(extra_args or [])
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
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            # Small CPU runs scale poorly over threads: N runs on a share of the cores each
            # finish sooner in total than N runs one after another on all of them.
            env["OMP_NUM_THREADS"] = str(threads_per_run(jobs))

        def start_run(run: PlannedRun) -> _RunningRun:
            args = planned_args[run.run_dir]
            return _RunningRun(experiment, run, args, env, timeout, keep_checkpoints)

        start = time.perf_counter()
        done, failed = run_scheduled(todo, jobs, start_run, echo)
        outcome["done"], outcome["failed"] = done, failed
        echo(
            f"finished {len(done)}, skipped {len(outcome['skipped'])}, failed "
            f"{len(failed)} in {_duration(time.perf_counter() - start)}"
        )
        for run in failed:
            echo(f"  failed: {run.row.name} seed {run.seed}: see {run.log_path}")
        if summary:
            from mtlscene.experiments.summary import summarize

            for path in summarize(out_dir, experiment):
                echo(f"  wrote {path}")
        return outcome


def adopt_finished_elsewhere(
    todo: Sequence[PlannedRun],
    reuse: Sequence[str | Path],
    experiment: Experiment,
    planned_args: dict,
) -> list[PlannedRun]:
    """Adopt each run that a ``reuse`` folder finished with the same arguments; return them."""
    elsewhere = finished_runs(reuse, RESULT_FILE)
    adopted = []
    for run in todo:
        args = planned_args[run.run_dir]
        source = elsewhere.get(run_identity(args, run.run_dir))
        if source is not None:
            adopt(source, run.run_dir, experiment.name, run.row.name, args, RESULT_FILE)
            adopted.append(run)
    return adopted


def run_scheduled(
    todo: Sequence[PlannedRun],
    jobs: int,
    start_run: Callable[[PlannedRun], _RunningRun],
    echo,
) -> tuple[list[PlannedRun], list[PlannedRun]]:
    """Run ``todo``, ``jobs`` at a time, with a progress line per start; (done, failed)."""
    done: list[PlannedRun] = []
    failed: list[PlannedRun] = []
    start = time.perf_counter()
    pending = list(todo)
    running: list[_RunningRun] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.pop(0)
                elapsed = time.perf_counter() - start
                finished = len(done) + len(failed)
                eta = ""
                if finished:  # throughput so far, so it also holds with several runs at once
                    eta = f", about {_duration(elapsed / finished * (len(todo) - finished))} left"
                index = len(todo) - len(pending)
                where = f"{run.row.name} | seed {run.seed}"
                echo(f"[{index}/{len(todo)}] {where} | {_duration(elapsed)}{eta}")
                running.append(start_run(run))
            ended = [job for job in running if job.poll()]
            if not ended:
                time.sleep(0.2)
                continue
            for job in ended:
                running.remove(job)
                error = job.error()
                if error is None:
                    done.append(job.run)
                else:
                    failed.append(job.run)
                    record_failure(job.run, error, echo)
    finally:
        # Interrupted (Ctrl-C, SIGTERM turned into an exception): leave no orphan behind.
        for job in running:
            job.stop()
    return done, failed


def record_failure(run: PlannedRun, error: str, echo) -> None:
    """Leave ``failed.json`` (why, and where the log is) in the run folder and say so."""
    failure = {"row": run.row.name, "seed": run.seed, "error": error, "log": str(run.log_path)}
    (run.run_dir / FAILED_FILE).write_text(json.dumps(failure, indent=2), "utf-8")
    echo(f"    FAILED {run.row.name} seed {run.seed} ({error}); log: {run.log_path}")
