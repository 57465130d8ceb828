"""Where an experiment's runs train: ``local`` child processes or ``slurm`` jobs.

An executor is one file. Each has ``start(job)`` (one run now; the handle has ``poll()``,
``error()`` and ``stop()``) and ``run_all(jobs, echo)`` (every run, returning the done and
the failed ones). A run folder's ``result.json`` is the one truth for "finished", whatever
ran it.
"""

from __future__ import annotations

from pathlib import Path

EXECUTORS = ("local", "slurm")


class ExecutorConfigError(ValueError):
    """An executor cannot run as configured (the message names the option and the fix)."""


def make_executor(
    name: str,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    jobs: int = 1,
    timeout: float | None = None,
    wait: bool = True,
):
    """The executor called ``name``, configured from a file and ``KEY=VALUE`` overrides.

    Args:
        name: ``local`` or ``slurm``.
        config: an executor config file (``configs/executors/<cluster>.yaml``; slurm only).
        overrides: ``KEY=VALUE`` items over the file's keys (slurm only).
        jobs: runs at once (local).
        timeout: seconds before a local run counts as failed.
        wait: whether ``run_all`` waits for the runs to end (slurm; local always waits).
    """
    if name == "local":
        if config is not None or overrides:
            raise ExecutorConfigError(
                "--executor-config and --slurm are options of --executor slurm; the local "
                "executor takes --jobs"
            )
        from mtlscene.experiments.executors.local import LocalExecutor

        return LocalExecutor(jobs=jobs, timeout=timeout)
    if name == "slurm":
        from mtlscene.experiments.executors.slurm import SlurmExecutor, load_slurm_config

        return SlurmExecutor(load_slurm_config(config, overrides or []), wait=wait)
    raise ExecutorConfigError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "ExecutorConfigError", "make_executor"]
