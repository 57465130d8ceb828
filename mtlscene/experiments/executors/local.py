"""The ``local`` executor: runs in child processes of this computer, a few at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from mtlscene.experiments.executors.device_slots import DeviceSlots
from mtlscene.experiments.plan import (
    PlannedRun,
    RunJob,
    duration,
    log_cause,
    record_failure,
)
from mtlscene.experiments.reuse import prepare_run_folder

# Not ``-m``: the package imports the runner first and runpy would warn.
_CHILD = "import sys; from mtlscene.experiments.single_run import main; main(sys.argv[1:])"


def threads_per_run(jobs: int) -> int:
    """CPU threads each of ``jobs`` concurrent runs gets: the cores shared out evenly."""
    return max(1, (os.cpu_count() or 1) // jobs)


class LocalRun:
    """One (row, seed) being trained in its own process, with its log open.

    ``on_end`` is called once, when the process has ended (or is stopped): the executor
    frees the run's device slot there.
    """

    def __init__(
        self,
        job: RunJob,
        env: dict[str, str],
        timeout: float | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        run = job.run
        spec_path = prepare_run_folder(job)
        self.run = run
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.timed_out = False
        self._on_end = on_end
        self._log = run.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(spec_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def poll(self) -> bool:
        """Whether the process has ended (killing it first when past its deadline)."""
        if self.process.poll() is not None:
            self._ended()
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            self.stop()
            return True
        return False

    def _ended(self) -> None:
        if self._on_end is not None:
            on_end, self._on_end = self._on_end, None  # once, however often it is polled
            on_end()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._ended()

    def error(self) -> str | None:
        """Why the run failed, or None when it wrote its result."""
        self._log.close()
        if self.timed_out:
            return f"timed out after {self.timeout:.0f} s"
        if self.process.returncode == 0 and self.run.done:
            return None
        cause = log_cause(self.run.log_path.read_text(encoding="utf-8", errors="replace"))
        return f"exit status {self.process.returncode}: {cause[:300]}"


class LocalExecutor:
    """Runs in child processes of this computer, ``jobs`` at a time.

    Each run gets an even share of the CPU threads (unless OMP_NUM_THREADS is set): small
    CPU runs scale poorly over threads, so N runs on a share of the cores each finish
    sooner in total than N runs one after another on all of them. With ``slots`` each run
    also takes a slot on a GPU and sees that GPU alone (``CUDA_VISIBLE_DEVICES``).

    Args:
        jobs: runs at once (with ``slots``: at most their capacity; None: all of it).
        timeout: seconds before a run is stopped and counted as failed.
        slots: K runs on each of these GPUs (``device_slots.DeviceSlots``).
    """

    name = "local"
    poll_s = 0.5

    def __init__(
        self, jobs: int | None = 1, timeout: float | None = None, slots: DeviceSlots | None = None
    ) -> None:
        if jobs is None:
            jobs = slots.capacity if slots is not None else 1
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        if slots is not None and jobs > slots.capacity:
            raise ValueError(
                f"{jobs} runs at once do not fit in {slots.capacity} device slots "
                f"({slots.describe()}): raise --runs-per-device or name more --devices"
            )
        self.jobs = jobs
        self.slots = slots
        self.timeout = timeout
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            self.env["OMP_NUM_THREADS"] = str(threads_per_run(jobs))

    def start(self, job: RunJob) -> LocalRun:
        """Start one run now; poll the returned handle until it ends."""
        if self.slots is None:
            return LocalRun(job, self.env, self.timeout)
        device = self.slots.acquire()
        if device is None:  # the scheduler starts no more runs than there are slots
            raise RuntimeError(f"no free device slot to start {job.run.run_dir}")
        try:
            env = self.slots.environment(device, self.env)
            return LocalRun(job, env, self.timeout, lambda: self.slots.release(device))
        except BaseException:
            self.slots.release(device)
            raise

    def run_all(
        self, jobs: Sequence[RunJob], echo: Callable[[str], None]
    ) -> tuple[list[PlannedRun], list[PlannedRun]]:
        """Run every job, ``self.jobs`` at a time; (done, failed)."""
        by_dir = {job.run.run_dir: job for job in jobs}

        def start_run(run: PlannedRun) -> LocalRun:
            return self.start(by_dir[run.run_dir])

        return run_scheduled([job.run for job in jobs], self.jobs, start_run, echo)


def run_scheduled(
    todo: Sequence[PlannedRun],
    jobs: int,
    start_run: Callable[[PlannedRun], LocalRun],
    echo,
) -> tuple[list[PlannedRun], list[PlannedRun]]:
    """Run ``todo``, ``jobs`` at a time, with a progress line per start; (done, failed)."""
    done: list[PlannedRun] = []
    failed: list[PlannedRun] = []
    start = time.perf_counter()
    pending = list(todo)
    running: list[LocalRun] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.pop(0)
                elapsed = time.perf_counter() - start
                finished = len(done) + len(failed)
                eta = ""
                if finished:  # throughput so far, so it also holds with several runs at once
                    eta = f", about {duration(elapsed / finished * (len(todo) - finished))} left"
                index = len(todo) - len(pending)
                where = f"{run.row.name} | seed {run.seed}"
                echo(f"[{index}/{len(todo)}] {where} | {duration(elapsed)}{eta}")
                running.append(start_run(run))
            ended = [job for job in running if job.poll()]
            if not ended:
                time.sleep(0.2)
                continue
            for job in ended:
                running.remove(job)
                error = job.error()
                if error is None:
                    done.append(job.run)
                else:
                    failed.append(job.run)
                    record_failure(job.run, error, echo)
    finally:
        # Interrupted (Ctrl-C, SIGTERM turned into an exception): leave no orphan behind.
        for job in running:
            job.stop()
    return done, failed


__all__ = ["LocalExecutor", "LocalRun", "run_scheduled", "threads_per_run"]
