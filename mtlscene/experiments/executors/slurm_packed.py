"""A SLURM job that owns a node's GPUs and trains several runs on them, K on each GPU.

The slurm executor submits one of these per group of ``gpus_per_node x runs_per_device``
runs (``runs_per_device`` set in the executor config). Inside the job, one process per run
(`child_main`), each seeing one GPU (``CUDA_VISIBLE_DEVICES``, taken in the job's own
list), placed by `device_slots.run_packed`:

- Each run writes its own ``run.log`` (appended to by every attempt), ``attempts.jsonl``,
  checkpoint and ``result.json``, as a run alone in a job does.
- A stop signal (USR2: preemption or the time limit; SIGTERM) that reaches the job is
  passed on to every run of it (SLURM may signal them too: a run acts on the first). Each
  saves its checkpoint at the step it is at and exits with `REQUEUE_EXIT`; no further run
  starts. When they have all ended the job requeues once, and the next attempt resumes
  every run of the group that has no result yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from mtlscene.experiments.executors.attempts import requeue_once, run_attempt
from mtlscene.experiments.executors.device_slots import (
    VISIBLE,
    DeviceSlots,
    parse_devices,
    run_packed,
)
from mtlscene.experiments.single_run import RESULT_FILE

# Exit status of a run that a stop signal stopped at a step, its checkpoint saved
# (EX_TEMPFAIL: try again later).
REQUEUE_EXIT = 75
# One run of a packed job. A signal that arrives while the run still imports is kept and
# acted on once the run's own handler is in place (the default action would kill it).
_CHILD = (
    "import signal, sys; early = []\n"
    "for stop in (signal.SIGUSR2, signal.SIGTERM):\n"
    "    signal.signal(stop, lambda signum, frame: early.append(signum))\n"
    "from mtlscene.experiments.executors.slurm_packed import child_main\n"
    "child_main(sys.argv[1:], early)\n"
)


def child_main(argv: Sequence[str], early: Sequence[int] = ()) -> None:
    """One run of a packed job: ``SPEC.json CHECKPOINT_EVERY_N_STEPS``.

    Exits 0 when the run finished, `REQUEUE_EXIT` when a stop signal stopped it at a
    step (checkpoint saved), and with an error otherwise.
    """
    from mtlscene.callbacks.preemption import STOP_REQUEST

    spec_path, every_n_steps = argv
    STOP_REQUEST.install()
    if early:  # received while importing: now the handler records it
        os.kill(os.getpid(), early[0])
    stop = run_attempt(spec_path, int(every_n_steps))
    if stop is not None:
        print(stop, flush=True)
        raise SystemExit(REQUEUE_EXIT)


def job_devices(env: Mapping[str, str]) -> list[str]:
    """The GPUs of this job, numbered as it sees them (``0..G-1``).

    SLURM lists a job's GPUs in ``CUDA_VISIBLE_DEVICES``; without that list, the GPUs that
    ``torch`` sees.

    Raises:
        RuntimeError: the job sees no GPU.
    """
    listed = [item for item in env.get(VISIBLE, "").split(",") if item.strip()]
    devices = [str(index) for index in range(len(listed))] if listed else parse_devices("all")
    if not devices:
        raise RuntimeError(
            "this packed job sees no GPU (CUDA_VISIBLE_DEVICES is unset and torch sees none): "
            "runs_per_device needs gpus_per_node GPUs granted by SLURM"
        )
    return devices


def threads_per_run(env: Mapping[str, str], runs: int) -> int:
    """CPU threads of each of ``runs`` runs at once: the job's cores shared out evenly."""
    cores = int(env.get("SLURM_CPUS_PER_TASK") or os.cpu_count() or 1)
    return max(1, cores // max(1, runs))


class PackedSlurmJob:
    """What a packed SLURM job runs: its group of runs, K at once on each of its GPUs.

    Only the spec paths travel in the pickle; a requeued job gets the same object again
    (`checkpoint`) and skips the runs that have a result.

    Args:
        spec_paths: the runs' ``spec.json`` files.
        checkpoint_every_n_steps: steps between the periodic checkpoints of each run.
        runs_per_device: runs at once on one GPU (K).
    """

    def __init__(
        self, spec_paths: Sequence[str], checkpoint_every_n_steps: int, runs_per_device: int
    ) -> None:
        self.spec_paths = list(spec_paths)
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        self.runs_per_device = runs_per_device
        self._processes: list[subprocess.Popen] = []
        self._signum: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The running processes belong to this attempt, not to the pickled job.
        return {key: value for key, value in self.__dict__.items() if key != "_processes"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _processes=[], _signum=None)

    def __call__(self) -> None:
        # submitit's USR2 handler requeues; the job's own handler passes the signal on.
        submitit_requeue = signal.getsignal(signal.SIGUSR2)
        todo = [path for path in self.spec_paths if not _finished(path)]
        if not todo:
            return  # all finished by an earlier attempt of this job
        for stop_signal in (signal.SIGUSR2, signal.SIGTERM):
            signal.signal(stop_signal, self._forward)
        slots = DeviceSlots(job_devices(os.environ), self.runs_per_device)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["OMP_NUM_THREADS"] = str(threads_per_run(env, min(len(todo), slots.capacity)))
        print(f"packed job: {len(todo)} run(s), {slots.describe()}", flush=True)
        ended = run_packed(todo, slots, self._launch, env, stop=lambda: self._signum is not None)
        statuses = dict(ended)
        for path in todo:
            status = statuses.get(path)
            how = "not started" if status is None else f"exit status {status}"
            print(f"  {_run_dir(path)}: {how}", flush=True)
        unfinished = [path for path in todo if not _finished(path)]
        stopped = [
            path
            for path in unfinished
            if statuses.get(path) is None or statuses[path] == REQUEUE_EXIT or statuses[path] < 0
        ]
        if self._signum is not None and stopped:
            name = signal.Signals(self._signum).name
            requeue_once(
                submitit_requeue,
                self._signum,
                f"{name}: {len(stopped)} run(s) of this job stopped at a saved step or not "
                "started; requeueing the job once",
                "each run's requeue/requeue.ckpt",
            )
        if unfinished:
            raise RuntimeError(
                f"{len(unfinished)} of {len(todo)} run(s) of this job failed; see their "
                f"run.log: {', '.join(str(_run_dir(path) / 'run.log') for path in unfinished)}"
            )

    def _launch(self, spec_path: str, env: dict[str, str]) -> subprocess.Popen:
        """Start one run with its GPU, appending its output to its ``run.log``."""
        log_path = _run_dir(spec_path) / "run.log"
        with log_path.open("a", encoding="utf-8") as log:
            job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID", "?")
            log.write(f"packed job {job}: {VISIBLE}={env.get(VISIBLE, '')}\n")
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, spec_path, str(self.checkpoint_every_n_steps)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._processes.append(process)
        if self._signum is not None:  # the signal came while it was starting
            process.send_signal(self._signum)
        return process

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Record the first stop signal and pass each one on to the runs still running."""
        if self._signum is None:
            self._signum = signum
        for process in self._processes:
            if process.returncode is None:  # no wait() here: a handler must not block
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on USR2: requeue this same group (finished runs are skipped)."""
        import submitit

        return submitit.helpers.DelayedSubmission(
            type(self)(self.spec_paths, self.checkpoint_every_n_steps, self.runs_per_device)
        )


def _run_dir(spec_path: str) -> Path:
    return Path(spec_path).parent


def _finished(spec_path: str) -> bool:
    return (_run_dir(spec_path) / RESULT_FILE).is_file()


__all__ = ["REQUEUE_EXIT", "PackedSlurmJob", "child_main", "job_devices", "threads_per_run"]
