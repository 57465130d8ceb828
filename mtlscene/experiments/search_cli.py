"""``mtlscene-experiment search NAME``: the search's command line (see ``search.py``)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from mtlscene.experiments.cli_options import (
    add_executor_options,
    build_executor,
    override_arg,
    positive_int,
)
from mtlscene.experiments.definition import load_experiment, resolve_config
from mtlscene.experiments.executors import ExecutorConfigError
from mtlscene.experiments.plan import plan_runs, run_args
from mtlscene.experiments.reuse import OutputFolderError
from mtlscene.experiments.runner import run_experiment
from mtlscene.experiments.summary import EXPERIMENT_COPY


def add_search_parser(commands) -> None:
    """The ``search`` subcommand and its options."""
    search = commands.add_parser(
        "search",
        help="search fixed weights (Optuna, on validation), then compare the best over seeds "
        "with the experiment's rows on test",
    )
    search.add_argument("experiment", help="an experiment YAML with a `search:` block")
    search.add_argument("--out", help="output folder (default runs/experiments/<name>)")
    search.add_argument("--config", action="append", default=[], help="extra config file")
    search.add_argument(
        "--override", type=override_arg, action="append", default=[], metavar="KEY=VALUE"
    )
    search.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        metavar="K",
        help="trials (and comparison runs) at once (default 1)",
    )
    search.add_argument("--n-trials", type=int, help="trials of the study (default: the YAML's)")
    search.add_argument("--seeds", type=int, help="seeds of the comparison (default: the YAML's)")
    search.add_argument(
        "--storage",
        metavar="URL",
        help="an Optuna RDB storage (e.g. postgresql://host/db) shared by workers on several "
        "machines; default: a journal file in OUT/search/",
    )
    search.add_argument(
        "--no-compare",
        action="store_true",
        help="stop after the search (the comparison runs the next time without it)",
    )
    search.add_argument("--reuse", action="append", default=[], metavar="DIR", help="as for `run`")
    add_executor_options(search)


def run_search_command(args: argparse.Namespace) -> int:
    """Search, then retrain the best weights over seeds and summarise the comparison."""
    # Here, not at the top: the search's pruning callback loads Lightning, which the other
    # commands of the command line do not need.
    from mtlscene.experiments.search import (
        SearchError,
        best_weights,
        check_report_seeds,
        comparison_experiment,
        load_search,
        run_search,
        summarize_search,
        write_experiment_copy,
    )

    try:
        experiment = load_experiment(args.experiment)
        spec = load_search(experiment)
        check_report_seeds(spec, experiment.seeds if args.seeds is None else args.seeds)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise SystemExit(f"--n-trials {args.n_trials}: at least 1")
        spec = replace(spec, n_trials=args.n_trials)
    executor = build_executor(args, args.parallel, None)
    if args.executor == "slurm":
        executor.config.array_parallelism = min(executor.config.array_parallelism, args.parallel)
    out = Path(args.out or Path("runs") / "experiments" / experiment.name)
    out.mkdir(parents=True, exist_ok=True)
    extra = []
    for config in args.config:
        extra += ["--config", str(resolve_config(config))]
    extra += args.override
    start = time.perf_counter()
    try:
        if args.executor == "slurm":
            run_devices_check(executor, experiment, extra)
        study = run_search(
            experiment, spec, out, executor, args.parallel, extra, storage=args.storage
        )
        for path in summarize_search(study, spec, out):
            print(f"  wrote {path}")
        weights = best_weights(study)
        print(
            f"search: best trial {study.best_trial.number} weights {weights} "
            f"({spec.objective} {study.best_value:.4g} on validation) after "
            f"{time.perf_counter() - start:.0f} s"
        )
        if args.no_compare:
            return 0
        comparison = comparison_experiment(experiment, weights, spec)
        write_experiment_copy(comparison, out / EXPERIMENT_COPY)
        outcome = run_experiment(
            comparison,
            out,
            seeds=args.seeds,
            extra_args=extra,
            reuse=args.reuse,
            executor=executor,
        )
    except (SearchError, ExecutorConfigError, OutputFolderError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        print(
            f"interrupted: the study and finished runs are kept in {out}; the same command resumes"
        )
        return 130
    print(f"search and comparison in {time.perf_counter() - start:.0f} s -> {out}")
    return 1 if outcome["failed"] else 0


def run_devices_check(executor, experiment, extra) -> None:
    """Ask SLURM about the first row's resources before anything is submitted."""
    # Here, not at the top: the slurm executor loads Lightning (its preemption callback),
    # which a local search's command line does not need.
    from mtlscene.experiments.executors.slurm import run_devices

    run = plan_runs(experiment, Path("/nonexistent"), 1)[0]
    executor.preflight(run_devices(run_args(experiment, run, list(extra), False)))
