"""The ``slurm`` executor: one SLURM job per run, submitted through submitit.

- Runs go out as one job array per resource shape, at most ``array_parallelism`` running.
  A run with ``trainer.devices G`` gets G tasks and G GPUs on each of ``nodes`` nodes
  (``gpus_per_node: 0``: CPU runs); Lightning's ``SLURMEnvironment`` takes the ranks from
  SLURM, ``srun`` starts them, and the run gets ``trainer.num_nodes`` = ``nodes``.
- Each job runs fit + test in-process (`mtlscene.experiments.single_run.execute`).
  It writes a checkpoint every ``checkpoint_every_n_steps`` training steps into the run
  folder. On USR2 (preemption, or the time limit ``signal_delay_s`` ahead) or SIGTERM the
  main process of each rank records the signal (DataLoader workers ignore it); at the end
  of the current step the run saves its checkpoint there
  (`RequeueCheckpoint`), and rank 0 hands
  the signal to submitit's handler, which requeues the job once (``scontrol requeue``;
  jobs are submitted with ``--requeue``). The requeued job resumes from the very step it
  was signalled at (exact resume: RNG and loader position are in it) and ends with the
  result of an uninterrupted run. Lightning's own requeue is switched off
  (``SLURMEnvironment(auto_requeue=False)``) so that exactly one component requeues.
- Each attempt appends its wall time to ``attempts.jsonl``; the result's ``wall_time_s``
  is their sum.
- The job id goes into the run folder (``job.json``). Running the command again attaches to
  jobs still queued or running instead of submitting them twice; a run whose job is gone
  without a result is submitted again and resumes from its checkpoint.
- ``runs_per_device: K`` packs runs instead: each job takes ``gpus_per_node`` GPUs of one
  node and trains up to G x K single-device runs on them, one process per run
  (`slurm_packed`). Each run keeps its own folder, ``run.log``, attempts and checkpoint; a
  stop signal reaches every run of the job and the job requeues once.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import yaml

from mtlscene.experiments.executors.attempts import (
    ATTEMPTS_FILE,
    REQUEUE_DIR,
    requeue_once,
    run_attempt,
)
from mtlscene.experiments.executors.errors import ExecutorConfigError
from mtlscene.experiments.executors.slurm_commands import (
    SlurmUnavailable,
    controller_unreachable,
    run_query,
    sacct_states,
    squeue,
    unreachable_message,
)
from mtlscene.experiments.executors.slurm_packed import PackedSlurmJob
from mtlscene.experiments.plan import (
    PlannedRun,
    RunJob,
    duration,
    log_cause,
    record_failure,
)
from mtlscene.experiments.reuse import SPEC_FILE, prepare_run_folder, run_identity

JOB_FILE = "job.json"
# How long ``follow`` keeps waiting while squeue fails (beyond its own retries) before it
# gives up; the jobs themselves do not depend on it.
QUEUE_OUTAGE_LIMIT_S = 600.0
# sbatch --test-only waits ~20 s for a controller by itself; one retry after that.
PREFLIGHT_RETRY_DELAYS_S = (2.0,)
# squeue states of a job that will still run (or is running).
LIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "SUSPENDED",
    "STOPPED",
}


@dataclass
class SlurmConfig:
    """Resources of every job, from ``configs/executors/<cluster>.yaml`` and ``--slurm``.

    Attributes:
        partition: the partition (``-p``); None: the cluster's default.
        account: the account to charge (``-A``).
        qos: the quality of service (``--qos``).
        constraint: node features (``-C``), e.g. ``a100``.
        cpus_per_task: CPU cores of each task (each rank).
        mem_gb: memory of each job's node, GB.
        time_min: time limit of each job attempt, minutes. An attempt that reaches it
            saves a checkpoint at the step USR2 arrives (``signal_delay_s`` ahead) and
            requeues (at most ``max_requeues_on_timeout`` times).
        nodes: nodes of each run: ``trainer.devices`` tasks and GPUs on each, and
            ``trainer.num_nodes`` = ``nodes`` (DDP across them).
        gpus_per_node: ``devices`` (one per ``trainer.devices``, the default) or a number
            (0 for CPU-only runs).
        tasks_per_node: ``devices`` (the default) or a number, which must then equal each
            run's ``trainer.devices``: Lightning needs one SLURM task per device.
        array_parallelism: jobs of one array running at once.
        setup: shell lines run before the job (``module load ...``, ``source venv``).
        sbatch: any other ``#SBATCH`` option, e.g. ``{mail-type: END}``.
        checkpoint_every_n_steps: training steps between the checkpoints a requeued job
            resumes from.
        signal_delay_s: seconds before the time limit at which SLURM sends USR2.
        max_requeues_on_timeout: requeues after reaching the time limit (preemptions do
            not count).
        poll_s: seconds between two looks at the queue while waiting.
        runs_per_device: None (one run per job) or K: each job takes ``gpus_per_node`` GPUs
            of one node and trains up to ``gpus_per_node`` x K single-device runs at once,
            K on each GPU. ``cpus_per_task`` and ``mem_gb`` are then the whole job's.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    cpus_per_task: int = 4
    mem_gb: float = 16
    time_min: int = 240
    nodes: int = 1
    gpus_per_node: int | str = "devices"
    tasks_per_node: int | str = "devices"
    array_parallelism: int = 64
    setup: list[str] = field(default_factory=list)
    sbatch: dict[str, Any] = field(default_factory=dict)
    checkpoint_every_n_steps: int = 500
    signal_delay_s: int = 120
    max_requeues_on_timeout: int = 3
    poll_s: float = 10.0
    runs_per_device: int | None = None
    source: str = "defaults"

    def check(self) -> None:
        """Refuse values SLURM would misread, naming the key and where it came from."""
        for name in (
            "cpus_per_task",
            "time_min",
            "nodes",
            "array_parallelism",
            "checkpoint_every_n_steps",
        ):
            if int(getattr(self, name)) < 1:
                raise ExecutorConfigError(
                    f"{self.source}: {name} must be at least 1, got {getattr(self, name)!r}"
                )
        for name in ("gpus_per_node", "tasks_per_node"):
            value = getattr(self, name)
            if value != "devices" and not (isinstance(value, int) and value >= 0):
                raise ExecutorConfigError(
                    f"{self.source}: {name} is `devices` or a whole number, got {value!r}"
                )
        if self.mem_gb <= 0:
            raise ExecutorConfigError(f"{self.source}: mem_gb must be positive")
        if self.runs_per_device is not None:
            self._check_packing()

    def _check_packing(self) -> None:
        """Refuse a packed job without a node's GPUs to pack its runs on."""
        k = self.runs_per_device
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ExecutorConfigError(
                f"{self.source}: runs_per_device is a whole number of runs per GPU (at least "
                f"1), got {k!r}"
            )
        gpus = self.gpus_per_node
        if not isinstance(gpus, int) or gpus < 1:
            raise ExecutorConfigError(
                f"{self.source}: runs_per_device={k} packs runs on the GPUs of a whole node, "
                f"but gpus_per_node is {gpus!r}: set gpus_per_node to the GPUs each job takes "
                "(e.g. 8, all of a node's)"
            )
        if self.nodes != 1:
            raise ExecutorConfigError(
                f"{self.source}: runs_per_device={k} packs runs on one node, but nodes is "
                f"{self.nodes}: set nodes: 1"
            )
        if self.tasks_per_node not in ("devices", 1):
            raise ExecutorConfigError(
                f"{self.source}: runs_per_device={k}: a packed job is one task that starts "
                f"its runs, but tasks_per_node is {self.tasks_per_node!r}: leave it at "
                "`devices`"
            )

    @property
    def runs_per_job(self) -> int:
        """Runs one job trains: 1, or gpus_per_node x runs_per_device when packed."""
        return 1 if self.runs_per_device is None else int(self.gpus_per_node) * self.runs_per_device


_KEYS = [f.name for f in fields(SlurmConfig) if f.name != "source"]


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else None


def load_slurm_config(path: str | Path | None, overrides: Sequence[str] = ()) -> SlurmConfig:
    """A `SlurmConfig` from a YAML file and ``KEY=VALUE`` overrides (unknown keys fail)."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ExecutorConfigError(
                f"--executor-config {path}: no such file (examples: configs/executors/)"
            )
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ExecutorConfigError(f"--executor-config {path}: expected a mapping of keys")
        unknown = sorted(set(raw) - set(_KEYS))
        if unknown:
            raise ExecutorConfigError(
                f"--executor-config {path}: unknown key {unknown[0]!r}"
                f"{' (and ' + ', '.join(unknown[1:]) + ')' if unknown[1:] else ''}; "
                f"the keys are {', '.join(_KEYS)}"
            )
        values.update(raw)
        source = str(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in _KEYS:
            raise ExecutorConfigError(
                f"--slurm {item!r}: expected KEY=VALUE with KEY one of {', '.join(_KEYS)}"
            )
        values[key] = _parse_value(value)
        source = f"{source} + --slurm"
    config = SlurmConfig(**values, source=source)
    config.check()
    return config


def run_devices(args: Sequence[str]) -> int:
    """``trainer.devices`` of a run from its arguments (config files, then overrides)."""
    devices: Any = 1
    for index, arg in enumerate(args):
        if arg == "--config" and index + 1 < len(args):
            config = yaml.safe_load(Path(args[index + 1]).read_text(encoding="utf-8")) or {}
            devices = (config.get("trainer") or {}).get("devices", devices)
        elif arg.startswith("--trainer.devices="):
            devices = yaml.safe_load(arg.partition("=")[2])
        elif arg == "--trainer.devices" and index + 1 < len(args):
            devices = yaml.safe_load(args[index + 1])
    if isinstance(devices, list):
        return len(devices)
    if isinstance(devices, int) and devices >= 1:
        return devices
    raise ExecutorConfigError(
        f"trainer.devices={devices!r}: the slurm executor needs a number of devices per run "
        "(it asks SLURM for that many tasks and GPUs); set --override trainer.devices=N"
    )


class SlurmRun:
    """What a SLURM job runs: one run's fit + test, resumable after a requeue.

    Only the spec path travels in the pickle (never a Trainer or a model); the spec in the
    run folder says what to train.

    Args:
        spec_path: the run's ``spec.json``.
        checkpoint_every_n_steps: steps between the periodic checkpoints.
        nodes: nodes the run spans (``trainer.num_nodes``).
    """

    def __init__(self, spec_path: str, checkpoint_every_n_steps: int, nodes: int = 1) -> None:
        self.spec_path = spec_path
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        self.nodes = nodes

    def __call__(self) -> None:
        # submitit's USR2 handler (it requeues); ours only records the signal, in this
        # process alone, so that DataLoader workers forked later ignore it.
        submitit_requeue = signal.getsignal(signal.SIGUSR2)
        stop = run_attempt(self.spec_path, self.checkpoint_every_n_steps, self.nodes)
        if stop is not None:
            requeue_once(submitit_requeue, stop.signum, str(stop), str(stop.path))

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on USR2 (rank 0): requeue this same run.

        The checkpoint on disk is what the next attempt resumes from, so nothing of the
        running trainer needs to travel.
        """
        import submitit

        return submitit.helpers.DelayedSubmission(
            type(self)(self.spec_path, self.checkpoint_every_n_steps, self.nodes)
        )


def read_job(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``job.json`` (job id, logs), or None when no job was submitted for it."""
    path = run_dir / JOB_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def log_tail(path: str | Path, lines: int = 15) -> str:
    """The last lines of a log, or a note that it is missing."""
    path = Path(path)
    if not path.is_file():
        return f"(no log at {path})"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


class SlurmJobHandle:
    """One submitted run; ``poll`` looks at the run folder and the (cached) queue."""

    def __init__(self, executor: SlurmExecutor, run: PlannedRun, record: dict[str, Any]):
        self.executor = executor
        self.run = run
        self.record = record
        self.since = time.monotonic()

    @property
    def job_id(self) -> str:
        return self.record["job_id"]

    def poll(self) -> bool:
        if self.run.done:
            return True
        # A queue looked up before this job was submitted or attached does not know it.
        fresh = self.executor.queue_time <= self.since
        return self.job_id not in self.executor.queue(fresh=fresh)

    def error(self) -> str | None:
        if self.run.done:
            return None
        # The log's error line (its last line is often a pointer to the help).
        stderr = Path(self.record["stderr"])
        if not stderr.is_file() and self.record.get("job_stderr"):
            stderr = Path(self.record["job_stderr"])  # a packed job that ended before the run
        if stderr.is_file():
            last = log_cause(stderr.read_text(encoding="utf-8", errors="replace"))
        else:
            last = f"(no log at {stderr})"
        # Accounting says why (CANCELLED, TIMEOUT, ...) where the cluster keeps it.
        state = sacct_states([self.job_id]).get(self.job_id)
        how = f" ({state})" if state else ""
        return f"job {self.job_id} ended{how} without a result: {last[:300]}"

    def stop(self) -> None:
        """Cancel the job (used when a search stops early)."""
        subprocess.run(["scancel", self.job_id], check=False, capture_output=True)


class SlurmExecutor:
    """Submits runs as SLURM jobs through submitit and follows them to the end.

    Args:
        config: the jobs' resources.
        wait: whether ``run_all`` waits until every job has ended (else it returns once they
            are submitted or attached; the same command later attaches again).
    """

    name = "slurm"

    def __init__(self, config: SlurmConfig, wait: bool = True) -> None:
        for command in ("sbatch", "squeue", "scancel"):
            if shutil.which(command) is None:
                raise ExecutorConfigError(
                    f"--executor slurm: `{command}` is not on PATH; run on a SLURM login node "
                    "(or start the test cluster: bash .ci/slurm.sh start), or use --executor "
                    "local"
                )
        self.config = config
        self.wait = wait
        self._queue: dict[str, tuple[str, str]] = {}
        self.queue_time = -1e9
        self._checked: set[int] = set()

    @property
    def poll_s(self) -> float:
        return self.config.poll_s

    @property
    def placement(self) -> str:
        """How a packed job places its runs (empty when each job trains one run)."""
        config = self.config
        if config.runs_per_device is None:
            return ""
        return (
            f"{config.runs_per_device} run(s) on each of {config.gpus_per_node} GPU(s) of a "
            f"job, {config.array_parallelism} job(s) at once"
        )

    # -- queue ---------------------------------------------------------------------------
    def queue(self, fresh: bool = False) -> dict[str, tuple[str, str]]:
        """The user's live jobs, looked up at most every ``poll_s`` seconds."""
        if fresh or time.monotonic() - self.queue_time >= min(self.config.poll_s, 5.0):
            self._queue = {job: value for job, value in squeue().items() if value[0] in LIVE_STATES}
            self.queue_time = time.monotonic()
        return self._queue

    # -- submission ----------------------------------------------------------------------
    def _parameters(self, devices: int) -> dict[str, Any]:
        config = self.config
        nodes, tasks, gpus = self._shape(devices)
        setup = list(config.setup)
        if config.runs_per_device is None:  # a packed job shares its cores out per run
            setup.insert(0, "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}")
        parameters: dict[str, Any] = {
            "nodes": nodes,
            "ntasks_per_node": tasks,
            "cpus_per_task": config.cpus_per_task,
            "mem": f"{int(config.mem_gb * 1024)}MB",
            "time": config.time_min,
            "array_parallelism": config.array_parallelism,
            "signal_delay_s": config.signal_delay_s,
            "setup": setup,
            "job_name": "mtlscene",
        }
        if gpus:
            parameters["gpus_per_node"] = gpus
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(config, key):
                parameters[key] = getattr(config, key)
        # --requeue: a cluster with JobRequeue=0 would otherwise refuse the requeue after a
        # preemption, and the run would fail instead of resuming.
        parameters["additional_parameters"] = {"requeue": True, **config.sbatch}
        return parameters

    def _shape(self, devices: int) -> tuple[int, int, int]:
        """(nodes, tasks per node, GPUs per node) of a job whose runs have ``devices``."""
        config = self.config
        if config.runs_per_device is not None:
            if devices != 1:
                raise ExecutorConfigError(
                    f"{config.source}: runs_per_device={config.runs_per_device} packs "
                    f"single-device runs (each sees one GPU), but the runs have "
                    f"trainer.devices={devices}: drop runs_per_device, or train them on one "
                    "device"
                )
            # One task, the node's GPUs: it starts the job's runs, K on each GPU.
            return 1, 1, int(config.gpus_per_node)
        tasks = devices if config.tasks_per_node == "devices" else config.tasks_per_node
        if tasks != devices:
            raise ExecutorConfigError(
                f"{config.source}: tasks_per_node={tasks} but the runs have "
                f"trainer.devices={devices}; Lightning needs one SLURM task per device: set "
                "tasks_per_node: devices (or equal to trainer.devices)"
            )
        gpus = devices if config.gpus_per_node == "devices" else config.gpus_per_node
        return config.nodes, tasks, int(gpus)

    def preflight(self, devices: int) -> None:
        """Ask SLURM whether it would take these jobs (``sbatch --test-only``); submit nothing."""
        if devices in self._checked:
            return
        parameters = self._parameters(devices)
        command = [
            "sbatch",
            "--test-only",
            f"--nodes={parameters['nodes']}",
            f"--ntasks-per-node={parameters['ntasks_per_node']}",
            f"--cpus-per-task={parameters['cpus_per_task']}",
            f"--mem={parameters['mem']}",
            f"--time={parameters['time']}",
        ]
        if "gpus_per_node" in parameters:
            command.append(f"--gpus-per-node={parameters['gpus_per_node']}")
        for key in ("partition", "account", "qos", "constraint"):
            if key in parameters:
                command.append(f"--{key}={parameters[key]}")
        for key, value in (parameters.get("additional_parameters") or {}).items():
            flag = f"--{key.replace('_', '-')}"
            command.append(flag if value is True else f"{flag}={value}")
        command += ["--wrap", "true"]
        try:
            # A controller blip is retried once (sbatch itself waits ~20 s for it; someone
            # is waiting for this answer); a refusal (bad partition) is final at once.
            result = run_query(
                command,
                retry_if=lambda failed: controller_unreachable(failed.stderr),
                delays=PREFLIGHT_RETRY_DELAYS_S,
            )
        except SlurmUnavailable as error:
            raise SlurmUnavailable(f"{error}. Nothing was submitted.") from None
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise ExecutorConfigError(
                f"SLURM refuses these jobs ({self.config.source}: partition, account, qos, "
                f"constraint, nodes or resources): {message}. Nothing was submitted."
            )
        self._checked.add(devices)

    def _executor(self, folder: Path, devices: int):
        import submitit

        executor = submitit.SlurmExecutor(
            folder=folder / "%j", max_num_timeout=self.config.max_requeues_on_timeout
        )
        executor.update_parameters(**self._parameters(devices))
        return executor

    def _prepare(self, job: RunJob) -> tuple[SlurmRun, bool]:
        """Write the run's spec; the job's callable and whether the spec is new."""
        spec_path, new = self._write_spec(job)
        call = SlurmRun(str(spec_path), self.config.checkpoint_every_n_steps, self.config.nodes)
        return call, new

    def _write_spec(self, job: RunJob) -> tuple[Path, bool]:
        """Write the run's spec; its path and whether it is new."""
        run = job.run
        spec_path = run.run_dir / SPEC_FILE
        earlier = json.loads(spec_path.read_text("utf-8")) if spec_path.is_file() else None
        if earlier is not None and run_identity(earlier["args"], run.run_dir) != run_identity(
            job.args, run.run_dir
        ):
            # The checkpoint and attempts of another configuration are not this run's.
            shutil.rmtree(run.run_dir / REQUEUE_DIR, ignore_errors=True)
            (run.run_dir / ATTEMPTS_FILE).unlink(missing_ok=True)
        # Otherwise a checkpoint left by a cancelled or failed job is where this one resumes.
        return prepare_run_folder(job, executor="slurm"), earlier is None

    @staticmethod
    def _unprepare(run: PlannedRun) -> None:
        """Undo ``_prepare`` of a run whose submission was refused: a spec without a job
        would show as "not started" in ``status``."""
        (run.run_dir / SPEC_FILE).unlink(missing_ok=True)
        for folder in (run.run_dir, run.run_dir.parent):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    @staticmethod
    def _record(run: PlannedRun, submitted, packed: int | None = None) -> dict[str, Any]:
        record = {
            "executor": "slurm",
            "job_id": str(submitted.job_id),
            "stdout": str(submitted.paths.stdout),
            "stderr": str(submitted.paths.stderr),
            "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if packed is not None:
            # Several runs share the job and its log: each run writes its own run.log.
            record.update(
                stdout=str(run.log_path),
                stderr=str(run.log_path),
                job_stdout=record["stdout"],
                job_stderr=record["stderr"],
                runs_in_job=packed,
            )
        (run.run_dir / JOB_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return record

    def _submit(self, jobs: Sequence[RunJob]) -> list[SlurmJobHandle]:
        """Submit ``jobs`` as one array per device count; the handles, in order.

        SLURM is asked first (``preflight``), so a refused request writes nothing; a run
        folder prepared for an array that sbatch then refused is removed again. Packed
        (``runs_per_device``): one array whose jobs train ``runs_per_job`` runs each.
        """
        devices_of = {job.run.run_dir: run_devices(job.args) for job in jobs}
        for devices in sorted(set(devices_of.values())):
            self.preflight(devices)
        handles: dict[Path, SlurmJobHandle] = {}
        for devices in sorted(set(devices_of.values())):
            group = [job for job in jobs if devices_of[job.run.run_dir] == devices]
            if self.config.runs_per_device is not None:
                self._submit_packed(group, handles)
                continue
            prepared = [(job, *self._prepare(job)) for job in group]
            folder = group[0].run.run_dir.parents[2] / "slurm"
            try:
                executor = self._executor(folder, devices)
                submitted = executor.submit_array([call for _, call, _ in prepared])
            except Exception as error:  # submitit wraps sbatch's refusal
                self._refused(error, [(job, new) for job, _, new in prepared], handles)
            for (job, _, _), one in zip(prepared, submitted, strict=True):
                handles[job.run.run_dir] = SlurmJobHandle(self, job.run, self._record(job.run, one))
        return [handles[job.run.run_dir] for job in jobs]

    def _submit_packed(self, jobs: Sequence[RunJob], handles: dict[Path, SlurmJobHandle]) -> None:
        """Submit ``jobs`` in groups of ``runs_per_job``, one array job per group."""
        size = self.config.runs_per_job
        prepared = [(job, *self._write_spec(job)) for job in jobs]
        groups = [prepared[index : index + size] for index in range(0, len(prepared), size)]
        calls = [
            PackedSlurmJob(
                [str(spec_path) for _, spec_path, _ in group],
                self.config.checkpoint_every_n_steps,
                int(self.config.runs_per_device),
            )
            for group in groups
        ]
        folder = jobs[0].run.run_dir.parents[2] / "slurm"
        try:
            submitted = self._executor(folder, 1).submit_array(calls)
        except Exception as error:  # submitit wraps sbatch's refusal
            self._refused(error, [(job, new) for job, _, new in prepared], handles)
        for group, one in zip(groups, submitted, strict=True):
            for job, _, _ in group:
                record = self._record(job.run, one, packed=len(group))
                handles[job.run.run_dir] = SlurmJobHandle(self, job.run, record)

    def _refused(
        self,
        error: Exception,
        prepared: Sequence[tuple[RunJob, bool]],
        handles: dict[Path, SlurmJobHandle],
    ) -> NoReturn:
        """Undo the new run folders of a refused array and stop with sbatch's reason."""
        for job, new in prepared:
            if new:
                self._unprepare(job.run)
        message = str(error).strip().splitlines()
        detail = next((line for line in message if "error" in line.lower()), " ".join(message))
        done = (
            f"{len(handles)} run(s) of other arrays were submitted, these were not"
            if handles
            else "Nothing was submitted"
        )
        if controller_unreachable(str(error)):
            raise SlurmUnavailable(f"{unreachable_message('sbatch', detail)}. {done}.") from None
        raise ExecutorConfigError(f"sbatch refused the jobs: {detail}. {done}.") from None

    def start(self, job: RunJob) -> SlurmJobHandle:
        """Submit one run now (a search's trial); poll the handle until it ends."""
        if self.config.runs_per_device is not None:
            raise ExecutorConfigError(
                f"{self.config.source}: runs_per_device packs the runs of `run` into "
                "whole-node jobs; a search starts its trials one at a time, so each would "
                "hold a node for one run: drop runs_per_device for the search"
            )
        return self._submit([job])[0]

    def attach(self, run: PlannedRun) -> SlurmJobHandle | None:
        """A handle on the run's job when it is still queued or running, else None."""
        record = read_job(run.run_dir)
        if record is None or record.get("job_id") not in self.queue(fresh=True):
            return None
        return SlurmJobHandle(self, run, record)

    def run_all(
        self, jobs: Sequence[RunJob], echo: Callable[[str], None]
    ) -> tuple[list[PlannedRun], list[PlannedRun]]:
        """Attach to the runs' live jobs, submit the others, then follow them; (done, failed)."""
        attached = [h for h in (self.attach(job.run) for job in jobs) if h is not None]
        attached_dirs = {h.run.run_dir for h in attached}
        new = [job for job in jobs if job.run.run_dir not in attached_dirs]
        handles = attached + (self._submit(new) if new else [])
        if handles:
            ids = sorted({h.job_id.split("_")[0] for h in handles})
            echo(
                f"slurm: {len(new)} run(s) submitted, {len(attached)} attached to queued or "
                f"running jobs (job {', '.join(ids)}); logs in {handles[0].record['stdout']}"
            )
        if not self.wait:
            echo("slurm: not waiting; the same command attaches again, `status` follows them")
            return [], []
        return self.follow(handles, echo)

    def follow(
        self, handles: Sequence[SlurmJobHandle], echo: Callable[[str], None]
    ) -> tuple[list[PlannedRun], list[PlannedRun]]:
        """Wait until every job has ended; (done, failed) with each failure's log tail."""
        done: list[PlannedRun] = []
        failed: list[PlannedRun] = []
        pending = list(handles)
        start = time.perf_counter()
        outage_since: float | None = None
        try:
            while pending:
                try:
                    self.queue(fresh=True)  # retried for 15 s inside
                except SlurmUnavailable as error:
                    # The jobs do not need this runner: keep waiting through an outage.
                    if outage_since is None:
                        outage_since = time.monotonic()
                        echo(f"slurm: {error}; waiting (jobs are not affected)")
                    if time.monotonic() - outage_since > QUEUE_OUTAGE_LIMIT_S:
                        raise SlurmUnavailable(
                            f"{error} for {QUEUE_OUTAGE_LIMIT_S:.0f} s; the jobs keep running: "
                            "the same command attaches to them again"
                        ) from None
                    time.sleep(self.config.poll_s)
                    continue
                outage_since = None
                for handle in [h for h in pending if h.poll()]:
                    pending.remove(handle)
                    error = handle.error()
                    if error is None:
                        done.append(handle.run)
                        where = f"{handle.run.row.name} | seed {handle.run.seed}"
                        echo(
                            f"[{len(done) + len(failed)}/{len(handles)}] {where} finished "
                            f"(job {handle.job_id}) | {duration(time.perf_counter() - start)}"
                        )
                    else:
                        failed.append(handle.run)
                        record_failure(
                            handle.run,
                            error,
                            echo,
                            log=handle.record["stderr"],
                            job_id=handle.job_id,
                        )
                        echo(log_tail(handle.record["stderr"]))
                if pending:
                    time.sleep(self.config.poll_s)
        except KeyboardInterrupt:
            echo(
                f"stopped following {len(pending)} SLURM job(s); they keep running: the same "
                "command attaches to them again, `mtlscene-experiment cancel OUT` cancels them"
            )
            raise
        return done, failed
