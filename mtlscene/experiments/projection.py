"""An experiment's projected wall time, printed before its runs start.

runs x steps / rate / parallel slots: the steps come from each run's ``trainer.max_steps``,
the rate (training steps per second of one run) from ``--steps-per-second`` or else from
the median step time that this experiment's finished runs recorded (``result.json``,
``cost.median_step_s``), and the slots from the executor. The rate is that of a run as it
ran, packed or not, and counts training steps only: start-up, validation and test come on
top.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from mtlscene.experiments.plan import PlannedRun, duration
from mtlscene.experiments.single_run import RESULT_FILE


@dataclass(frozen=True)
class Rate:
    """Training steps per second of one run, and where the figure came from."""

    steps_per_second: float
    source: str


def _trainer_value(path: str, key: str):
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    trainer = config.get("trainer") if isinstance(config, dict) else None
    return trainer.get(key) if isinstance(trainer, dict) else None


def run_length(args: Sequence[str]) -> tuple[int | None, int | None]:
    """``(max_steps, max_epochs)`` that a run's ``fit`` arguments give, None where unset.

    Config files and ``--trainer.KEY=VALUE`` overrides are read in order, the last one
    winning, as the command line composes them.
    """
    values: dict[str, int | None] = {"max_steps": None, "max_epochs": None}
    items = list(args)
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        if item == "--config" and following is not None:
            for key in values:
                value = _trainer_value(following, key)
                values[key] = int(value) if value is not None else values[key]
            continue
        for key in values:
            flag = f"--trainer.{key}"
            if item.startswith(f"{flag}="):
                values[key] = int(item.partition("=")[2])
            elif item == flag and following is not None:
                values[key] = int(following)
    return values["max_steps"], values["max_epochs"]


def measured_rate(runs: Sequence[PlannedRun]) -> tuple[float, int] | None:
    """(steps/s, runs) from the median of the median step times the finished runs recorded."""
    steps = []
    for run in runs:
        path = run.run_dir / RESULT_FILE
        if not path.is_file():
            continue
        cost = json.loads(path.read_text(encoding="utf-8")).get("cost") or {}
        if cost.get("median_step_s"):
            steps.append(float(cost["median_step_s"]))
    if not steps:
        return None
    return 1.0 / statistics.median(steps), len(steps)


def choose_rate(configured: float | None, measured: tuple[float, int] | None) -> Rate | None:
    """The configured rate when given (the user knows the machine), else the measured one."""
    if configured is not None:
        source = "rate from --steps-per-second"
        if measured is not None:
            source += (
                f"; this experiment's {measured[1]} finished run(s) measured {measured[0]:.3g}"
            )
        return Rate(configured, source)
    if measured is not None:
        return Rate(
            measured[0],
            f"rate measured: median step time of {measured[1]} finished run(s) of this experiment",
        )
    return None


def parallel_slots(executor) -> int:
    """Runs the executor trains at once: local ``jobs``, SLURM ``array_parallelism`` (times
    the runs of each job when jobs pack runs: GPUs x ``runs_per_device``)."""
    jobs = getattr(executor, "jobs", None)
    if isinstance(jobs, int):
        return jobs
    config = getattr(executor, "config", None)
    per_job = int(getattr(config, "runs_per_job", 1) or 1)
    return int(getattr(config, "array_parallelism", 1) or 1) * per_job


def projection_line(
    steps: Sequence[int | None],
    epochs_bound: bool,
    rate: Rate | None,
    slots: int,
    placement: str = "",
) -> str:
    """The printed projection for runs of ``steps`` training steps each.

    Args:
        steps: each run's ``trainer.max_steps`` (None or <= 0: set by epochs instead).
        epochs_bound: whether a positive ``max_epochs`` may stop runs sooner.
        rate: steps per second of one run, or None when none is known.
        slots: runs at once.
        placement: how the runs are placed (e.g. K runs on each of N GPUs), if packed.
    """
    if not steps:
        return "projected wall time: nothing to run"
    if any(step is None or step <= 0 for step in steps):
        return (
            "projected wall time: unknown: the runs end by epochs, not steps "
            "(trainer.max_steps is not set); a budget preset sets it (configs/budgets/)"
        )
    if rate is None:
        return (
            "projected wall time: unknown: no step rate known yet (no finished run of this "
            "experiment recorded its step time); pass --steps-per-second RATE, e.g. 1 / the "
            "cost.median_step_s of one run's result.json"
        )
    total = sum(steps)
    at_once = min(slots, len(steps))
    seconds = total / rate.steps_per_second / at_once
    each = f"x {steps[0]:,} steps" if len(set(steps)) == 1 else f"with {total:,} steps in all"
    bound = " at most" if epochs_bound else ""
    where = f" ({placement})" if placement else ""
    return (
        f"projected wall time:{bound} {len(steps)} runs {each} / {rate.steps_per_second:.3g} "
        f"steps/s / {at_once} at a time{where} = {duration(seconds)} ({rate.source}; "
        "training steps only: start-up, validation and test come on top)"
    )


def project_wall_time(
    finished: Sequence[PlannedRun],
    todo_args: Sequence[Sequence[str]],
    executor,
    steps_per_second: float | None = None,
) -> str:
    """The projection line for the runs still to train.

    Args:
        finished: this experiment's runs, whose recorded step times give the measured rate.
        todo_args: each run-to-train's ``fit`` arguments.
        executor: the executor that will train them (its parallel slots).
        steps_per_second: a configured rate, used instead of the measured one.
    """
    lengths = [run_length(args) for args in todo_args]
    steps = [max_steps for max_steps, _ in lengths]
    epochs_bound = any(epochs is not None and epochs > 0 for _, epochs in lengths)
    rate = choose_rate(steps_per_second, measured_rate(finished))
    slots = getattr(executor, "slots", None)
    placement = slots.describe() if slots is not None else getattr(executor, "placement", "")
    return projection_line(steps, epochs_bound, rate, parallel_slots(executor), placement)


__all__ = [
    "Rate",
    "choose_rate",
    "measured_rate",
    "parallel_slots",
    "project_wall_time",
    "projection_line",
    "run_length",
]
