"""Where an experiment's runs train: ``local`` child processes or ``slurm`` jobs.

An executor is one file. Each has ``start(job)`` (one run now; the handle has ``poll()``,
``error()`` and ``stop()``) and ``run_all(jobs, echo)`` (every run, returning the done and
the failed ones). A run folder's ``result.json`` is the one truth for "finished", whatever
ran it.
"""

from __future__ import annotations

from pathlib import Path

from mtlscene.experiments.executors.device_slots import DeviceListError, DeviceSlots, parse_devices
from mtlscene.experiments.executors.errors import ExecutorConfigError
from mtlscene.experiments.executors.local import LocalExecutor

EXECUTORS = ("local", "slurm")


def make_executor(
    name: str,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    jobs: int | None = None,
    timeout: float | None = None,
    wait: bool = True,
    devices: str | None = None,
    runs_per_device: int | None = None,
):
    """The executor called ``name``, configured from a file and ``KEY=VALUE`` overrides.

    Args:
        name: ``local`` or ``slurm``.
        config: an executor config file (``configs/executors/<cluster>.yaml``; slurm only).
        overrides: ``KEY=VALUE`` items over the file's keys (slurm only).
        jobs: runs at once (local; None: one, or every device slot when packing).
        timeout: seconds before a local run counts as failed.
        wait: whether ``run_all`` waits for the runs to end (slurm; local always waits).
        devices: local: the GPUs to pack runs on (``all``, ``cpu`` or ``0,1,3``).
        runs_per_device: runs at once on each of those GPUs (K); slurm: the executor
            config's ``runs_per_device`` (jobs that pack runs on ``gpus_per_node`` GPUs).
    """
    if name == "local":
        if config is not None or overrides:
            raise ExecutorConfigError(
                "--executor-config and --slurm are options of --executor slurm; the local "
                "executor takes --jobs"
            )
        if devices is None and runs_per_device is None:
            return LocalExecutor(jobs=jobs or 1, timeout=timeout)
        return _packed_local_executor(jobs, timeout, devices, runs_per_device)
    if name == "slurm":
        if devices is not None:
            raise ExecutorConfigError(
                "--devices and --runs-per-device place runs of the local executor; a SLURM "
                "job gets its GPUs from the executor config (gpus_per_node), and "
                "--runs-per-device K packs K runs on each of them"
            )
        # Here, not at the top: the slurm executor loads Lightning (its preemption
        # callback), which a local experiment's command line does not need.
        from mtlscene.experiments.executors.slurm import SlurmExecutor, load_slurm_config

        slurm_config = load_slurm_config(config, overrides or [])
        if runs_per_device is not None:
            slurm_config.runs_per_device = runs_per_device
            slurm_config.source += " + --runs-per-device"
            slurm_config.check()
        return SlurmExecutor(slurm_config, wait=wait)
    raise ExecutorConfigError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")


def _packed_local_executor(
    jobs: int | None, timeout: float | None, devices: str | None, runs_per_device: int | None
):
    """A local executor with K runs on each listed GPU (on a CPU-only list: K at a time)."""
    try:
        gpus = parse_devices(devices)
    except DeviceListError as error:
        raise ExecutorConfigError(str(error)) from None
    if not gpus:  # the CPU is the one device: K runs share its threads, as --jobs K would
        return LocalExecutor(jobs=jobs or runs_per_device or 1, timeout=timeout)
    slots = DeviceSlots(gpus, runs_per_device or 1)
    try:
        return LocalExecutor(jobs=jobs, timeout=timeout, slots=slots)
    except ValueError as error:
        raise ExecutorConfigError(f"--jobs/--parallel: {error}") from None


__all__ = ["EXECUTORS", "ExecutorConfigError", "make_executor"]
