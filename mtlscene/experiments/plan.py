"""The plan of an experiment: every (row, seed) run, its folder and its ``fit`` arguments.

An experiment goes one way: plan (this module) -> schedule each run through an executor
(``executors/local.py`` or ``executors/slurm.py``) -> collect and summarise
(``summary.py``). A run folder's ``result.json`` is the one truth for "finished".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class RunJob:
    """What an executor needs to start one run: the run, its arguments, its experiment."""

    experiment: str
    run: PlannedRun
    args: list[str] = field(hash=False)
    keep_checkpoints: bool = False
    # More keys for the run's spec.json (``skip_test`` for a search trial).
    spec_extra: dict = field(default_factory=dict, hash=False)


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


def duration(seconds: float) -> str:
    """``12m05s`` or ``1h03m``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


# The lines a failed run's log ends with that say where to look, not what went wrong.
_HINTS = ("(set MTLSCENE_DEBUG=", "`mtlscene")
_USER_ERROR = re.compile(r"^mtlscene[\w -]*: error: ")
_RAISED = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b(?::|$)")


def log_cause(text: str) -> str:
    """The line of a failed run's log that says why it failed.

    In order: the command's own one-line error (``mtlscene fit: error: --model.weighting:
    no such class ...``), the last exception of a traceback, else the last line that is not
    a pointer to the help or the traceback switch.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (_USER_ERROR, _RAISED):
        found = [line for line in lines if pattern.match(line)]
        if found:
            return found[-1]
    rest = [line for line in lines if not line.startswith(_HINTS)]
    return rest[-1] if rest else "no output"


def record_failure(run: PlannedRun, error: str, echo, **extra) -> None:
    """Leave ``failed.json`` (why, and where the log is) in the run folder and say so."""
    log = str(extra.pop("log", run.log_path))
    failure = {"row": run.row.name, "seed": run.seed, "error": error, "log": log, **extra}
    (run.run_dir / FAILED_FILE).write_text(json.dumps(failure, indent=2), "utf-8")
    echo(f"    FAILED {run.row.name} seed {run.seed} ({error}); log: {log}")
