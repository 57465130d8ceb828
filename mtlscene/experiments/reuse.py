"""Reuse finished runs of other experiments that trained exactly the same configuration.

Experiments share rows: the single-task rows, the uncertainty row and the hand-tuned
weights appear in ``table1``, ``ablations`` and ``methods`` with the same base, budget and
seeds. A run is the same run when its ``fit`` arguments are the same apart from the ones
naming its own folder; such a run is adopted (its result is recorded under this
experiment's row, pointing at the original logs) instead of trained again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

SPEC_FILE = "spec.json"


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


def adopt(
    source: Path, run_dir: Path, experiment: str, row: str, args: Sequence[str], result_file: str
) -> None:
    """Record the finished run in ``source`` as this experiment's (row, seed) run."""
    result = json.loads((source / result_file).read_text(encoding="utf-8"))
    result.update(experiment=experiment, row=row, reused_from=str(source))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_spec(run_dir, experiment, row, result["seed"], args, reused_from=str(source))
    (run_dir / result_file).write_text(json.dumps(result, indent=2), encoding="utf-8")
