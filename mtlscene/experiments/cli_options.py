"""The options and value parsers that ``mtlscene-experiment run`` and ``search`` share."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlscene.experiments.definition import CONFIG_DIR
from mtlscene.experiments.executors import EXECUTORS, ExecutorConfigError, make_executor


def override_arg(text: str) -> str:
    """``--override KEY=VALUE`` as the ``--KEY=VALUE`` a run's command line takes."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"--override takes KEY=VALUE (e.g. trainer.max_steps=2000), got {text!r}"
        )
    return f"--{key.lstrip('-')}={value}"


def positive_rate(text: str) -> float:
    """A finite rate > 0 (``--steps-per-second``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"takes a rate > 0 (e.g. 15.4), got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--seeds``, ``--jobs``, ``--parallel``, ``--runs-per-device``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got {text!r}")
    return value


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and its resources, shared by ``run`` and ``search``."""
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where runs train: child processes here (local, the default) or SLURM jobs "
        "submitted through submitit (slurm)",
    )
    parser.add_argument(
        "--executor-config",
        metavar="YAML",
        help="resources of the SLURM jobs (partition, account, cpus, memory, time limit, "
        "array parallelism, setup lines): configs/executors/<cluster>.yaml",
    )
    parser.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key of --executor-config, e.g. --slurm time_min=600 (repeatable)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="local: the GPUs to place runs on, each run seeing one of them "
        "(CUDA_VISIBLE_DEVICES): 'all' (every visible GPU, the default with "
        "--runs-per-device), indices such as 0,1,3, or 'cpu'",
    )
    parser.add_argument(
        "--runs-per-device",
        type=positive_int,
        metavar="K",
        help="local: K runs at once on each GPU of --devices (default 1); a 128x256 run "
        "leaves most of a GPU idle. On the CPU: K runs at once, as --jobs K. slurm: each "
        "job trains gpus_per_node x K runs, K on each of its GPUs (runs_per_device)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="slurm: return once the jobs are submitted (the same command attaches to them "
        "later; `status OUT` follows them)",
    )


def build_executor(args: argparse.Namespace, jobs: int, timeout: float | None):
    """The executor the command line asks for (user errors end the command)."""
    config = args.executor_config
    if config is not None and not Path(config).is_file():
        shipped = CONFIG_DIR / "executors" / Path(config).name
        if not shipped.is_file():
            names = ", ".join(sorted(p.name for p in shipped.parent.glob("*.yaml")))
            raise SystemExit(
                f"--executor-config {config}: no such file here nor in configs/executors/ "
                f"(shipped: {names}); copy configs/executors/example_cluster.yaml and give "
                "its path"
            )
        config = shipped
    try:
        return make_executor(
            args.executor,
            config,
            args.slurm,
            jobs=jobs,
            timeout=timeout,
            wait=not args.no_wait,
            devices=args.devices,
            runs_per_device=args.runs_per_device,
        )
    except (ExecutorConfigError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from None
