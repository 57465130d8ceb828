"""A run folder's spec, and reusing finished runs that trained exactly the same thing.

Every run folder holds a ``spec.json``: what the run trains and where (`prepare_run_folder`
writes it before an executor starts the run). Experiments share rows: the single-task
rows, the uncertainty row and the hand-tuned weights appear in ``table1``, ``ablations``
and ``methods`` with the same base, budget and seeds. A run is the same run when its
``fit`` arguments are the same apart from the ones naming its own folder; such a run is
adopted (its result is recorded under this experiment's row, pointing at the original
logs) instead of trained again, and a finished run with other arguments is refused
(`check_finished_runs_match`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from mtlscene.experiments.definition import Experiment
from mtlscene.experiments.plan import FAILED_FILE, PlannedRun, RunJob
from mtlscene.experiments.single_run import RESULT_FILE

SPEC_FILE = "spec.json"


class OutputFolderError(RuntimeError):
    """The ``--out`` folder cannot take this experiment as asked (the message says why)."""


def _is_logger_preset(path: str) -> bool:
    return Path(path).parent.name == "logger"


def run_identity(args: Sequence[str], run_dir: str | Path) -> tuple[str, ...]:
    """The arguments that decide what a run trains.

    All but those naming the run's own folder and those choosing where it logs (a logger
    preset, ``--trainer.logger...``): the logger changes no weight, so a run finished
    without W&B is the same run when the experiment is resumed with ``--wandb``.
    """
    identity = []
    skip_value = False
    for index, arg in enumerate(args):
        if skip_value:
            skip_value = False
            continue
        if arg == "--config" and index + 1 < len(args) and _is_logger_preset(args[index + 1]):
            skip_value = True
            continue
        if str(run_dir) in arg or arg.startswith("--trainer.logger"):
            continue
        identity.append(arg)
    return tuple(identity)


def finished_runs(folders: Iterable[str | Path], result_file: str) -> dict[tuple, Path]:
    """Identity -> run folder of every finished run in these experiment output folders."""
    found: dict[tuple, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if not (folder / "runs").is_dir():
            raise FileNotFoundError(
                f"--reuse {folder}: no runs/ folder there; pass an experiment's output folder "
                "(the --out of an earlier `mtlscene-experiment run`)"
            )
        for spec_path in sorted(folder.glob(f"runs/*/seed*/{SPEC_FILE}")):
            if not (spec_path.parent / result_file).is_file():
                continue
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            found.setdefault(run_identity(spec["args"], spec["run_dir"]), spec_path.parent)
    return found


def write_spec(
    run_dir: Path, experiment: str, row: str, seed: int, args: Sequence[str], **extra
) -> Path:
    """Write the run's spec (what it trains and where) and return its path.

    The runner writes one before starting a run; ``finished_runs`` reads them back.
    """
    spec = {
        "experiment": experiment,
        "row": row,
        "seed": seed,
        "run_dir": str(run_dir),
        "args": list(args),
        **extra,
    }
    spec_path = run_dir / SPEC_FILE
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return spec_path


def prepare_run_folder(job: RunJob, **extra) -> Path:
    """Make the run's folder, clear an earlier failure and write its spec; the spec's path.

    Args:
        job: the run and its arguments.
        extra: more keys for the spec (``executor="slurm"``).
    """
    run = job.run
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / FAILED_FILE).unlink(missing_ok=True)
    return write_spec(
        run.run_dir,
        job.experiment,
        run.row.name,
        run.seed,
        job.args,
        keep_checkpoints=job.keep_checkpoints,
        **job.spec_extra,
        **extra,
    )


def adopt(
    source: Path, run_dir: Path, experiment: str, row: str, args: Sequence[str], result_file: str
) -> None:
    """Record the finished run in ``source`` as this experiment's (row, seed) run."""
    result = json.loads((source / result_file).read_text(encoding="utf-8"))
    result.update(experiment=experiment, row=row, reused_from=str(source))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_spec(run_dir, experiment, row, result["seed"], args, reused_from=str(source))
    (run_dir / result_file).write_text(json.dumps(result, indent=2), encoding="utf-8")


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
