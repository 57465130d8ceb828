"""``mtlscene-experiment``: run a named experiment over seeds and summarise it.

mtlscene-experiment list
mtlscene-experiment run table1 --seeds 3 [--out runs/experiments/table1]
mtlscene-experiment run sweeps --override trainer.max_steps=2000 --wandb
mtlscene-experiment run methods --jobs 2 --reuse runs/experiments/table1
mtlscene-experiment summarize runs/experiments/table1
mtlscene-experiment run table1 --executor slurm --executor-config example_cluster.yaml
mtlscene-experiment status runs/experiments/table1
mtlscene-experiment cancel runs/experiments/table1
mtlscene-experiment search search_semantic_depth --config budgets/cpu_short.yaml --parallel 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

from mtlscene.experiments.cli_options import (
    add_executor_options,
    build_executor,
    override_arg,
    positive_int,
    positive_rate,
)
from mtlscene.experiments.definition import available_experiments, load_experiment, resolve_config
from mtlscene.experiments.executors import ExecutorConfigError
from mtlscene.experiments.reuse import OutputFolderError
from mtlscene.experiments.runner import run_experiment, summarize_experiment
from mtlscene.experiments.search_cli import add_search_parser, run_search_command
from mtlscene.experiments.selection import SelectionError
from mtlscene.experiments.summary import EXPERIMENT_COPY

EXAMPLES = """examples:
  mtlscene-experiment list                                   # the shipped experiments
  mtlscene-experiment run table1 --seeds 3                   # the paper's Table 1, 3 seeds
  mtlscene-experiment run table1 --rows "3-task uncertainty" --override trainer.max_steps=200
  mtlscene-experiment status runs/experiments/table1         # finished/running/failed runs
  mtlscene-experiment summarize runs/experiments/table1      # rewrite table.md and figures
  mtlscene-experiment summarize docs/experiments/table1 --from-csv   # table.md from results.csv
  mtlscene-experiment run methods --jobs 2 --reuse runs/experiments/table1

Each command has its own help, e.g. mtlscene-experiment run --help
"""


def _stop_on_sigterm() -> None:
    """SIGTERM ends the runner like Ctrl-C, so it stops its running children first."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and a pointer to the help (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n`{self.prog} --help` shows the options.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mtlscene-experiment",
        description="Run a named experiment (rows of composed configs over seeds: a real fit "
        "then test per run) and write results.csv, table.md and figures.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the shipped experiments")
    run = commands.add_parser("run", help="run (or resume) an experiment")
    run.add_argument("experiment", help="a shipped name (see `list`) or an experiment YAML")
    run.add_argument(
        "--seeds", type=positive_int, help="number of seeds, >= 1 (default: the experiment's)"
    )
    run.add_argument("--out", help="output folder (default runs/experiments/<name>)")
    run.add_argument(
        "--config",
        action="append",
        default=[],
        help="extra config file for every run, after the experiment's base (repeatable)",
    )
    run.add_argument(
        "--override",
        type=override_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every run, applied last, e.g. trainer.max_steps=2000",
    )
    run.add_argument("--rows", nargs="+", help="run only these rows (by name)")
    run.add_argument("--wandb", action="store_true", help="log every run to W&B, grouped")
    run.add_argument("--timeout", type=float, help="seconds before a run counts as failed")
    run.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each run's checkpoints (by default a run deletes them once its result is "
        "written: about 0.2 GB a run at the CPU budgets)",
    )
    run.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="DIR",
        help="output folder of another experiment: its finished runs with exactly the same "
        "arguments (same checkout, configs and seed) are adopted, not trained again "
        "(repeatable)",
    )
    run.add_argument(
        "--jobs",
        type=positive_int,
        help="runs at once, each with an even share of the CPU threads (default 1, or every "
        "slot of --devices x --runs-per-device); on a small CPU model two runs of one thread "
        "each finish sooner than one after another",
    )
    run.add_argument(
        "--steps-per-second",
        type=positive_rate,
        metavar="RATE",
        help="training steps per second of one run, for the projected wall time printed "
        "before the runs start (default: measured by this experiment's finished runs)",
    )
    add_executor_options(run)
    summary = commands.add_parser("summarize", help="rewrite the summary of an output folder")
    summary.add_argument("out", help="an experiment's output folder")
    summary.add_argument(
        "--from-csv",
        action="store_true",
        help="rewrite table.md (and grouping.md) from the folder's results.csv alone, for a "
        "copy without its run folders such as docs/experiments/<name>; nothing is trained",
    )
    status = commands.add_parser(
        "status", help="every run of an output folder: finished, running, pending or failed"
    )
    status.add_argument("out", help="an experiment's output folder")
    cancel = commands.add_parser("cancel", help="cancel an output folder's SLURM jobs")
    cancel.add_argument("out", help="an experiment's output folder")
    add_search_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for name in available_experiments():
            experiment = load_experiment(name)
            print(f"{name:<12} {len(experiment.rows):>3} rows  {experiment.description}")
        return 0
    if args.command == "summarize":
        out = Path(args.out)
        try:
            experiment = load_experiment(out / EXPERIMENT_COPY)
            written = summarize_experiment(out, experiment, from_csv=args.from_csv)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"mtlscene-experiment summarize: {error}") from None
        for path in written:
            print(f"wrote {path}")
        return 0
    if args.command in ("status", "cancel"):
        # Here, not at the top: status reads SLURM's queue through the slurm executor,
        # which loads Lightning (its preemption callback); the other commands need neither.
        from mtlscene.experiments import status

        return status.main(args.command, Path(args.out))
    if args.command == "search":
        _stop_on_sigterm()
        return run_search_command(args)
    try:
        experiment = load_experiment(args.experiment)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"mtlscene-experiment run: {error}") from None  # names the fix
    executor = build_executor(args, args.jobs, args.timeout)
    _stop_on_sigterm()
    if args.rows:
        unknown = sorted(set(args.rows) - {row.name for row in experiment.rows})
        if unknown:
            raise SystemExit(
                f"--rows names {unknown}, not rows of {experiment.name}: "
                f"{[row.name for row in experiment.rows]}"
            )
        experiment = replace(
            experiment, rows=tuple(r for r in experiment.rows if r.name in args.rows)
        )
    out = Path(args.out or Path("runs") / "experiments" / experiment.name)
    out.mkdir(parents=True, exist_ok=True)
    if experiment.source is not None:
        shutil.copyfile(experiment.source, out / EXPERIMENT_COPY)
    extra = []
    for config in args.config:
        extra += ["--config", str(resolve_config(config))]
    try:
        outcome = run_experiment(
            experiment,
            out,
            seeds=args.seeds,
            extra_args=extra + args.override,
            wandb=args.wandb,
            timeout=args.timeout,
            jobs=args.jobs or 1,
            reuse=args.reuse,
            keep_checkpoints=args.keep_checkpoints,
            executor=executor,
            steps_per_second=args.steps_per_second,
        )
    except (FileNotFoundError, OutputFolderError, ExecutorConfigError, SelectionError) as error:
        raise SystemExit(str(error)) from None  # the message names the fix
    except KeyboardInterrupt:
        if args.executor == "slurm":
            return 130  # the executor said what became of the jobs
        print(
            f"interrupted: the runs in progress were stopped; finished runs are kept in "
            f"{out}, and the same command resumes from there"
        )
        return 130
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
