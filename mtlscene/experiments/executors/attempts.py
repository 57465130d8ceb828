"""One attempt of a run inside a SLURM job, and the requeue after a stop signal.

Both executors' SLURM jobs use these: the one-run job (`slurm.SlurmRun`) and each run of a
packed job (`slurm_packed`). An attempt trains from the run's checkpoint (if an earlier
attempt left one), appends its wall time and outcome to ``attempts.jsonl``, and returns the
stop request when a signal stopped it; `requeue_once` then hands the job to submitit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from mtlscene.callbacks.preemption import STOP_REQUEST, RequeueRequested
from mtlscene.experiments.single_run import RESULT_FILE, execute

ATTEMPTS_FILE = "attempts.jsonl"
REQUEUE_DIR = "requeue"
REQUEUE_CHECKPOINT = "requeue.ckpt"


def job_args(args: Sequence[str], run_dir: Path, every_n_steps: int, nodes: int = 1) -> list[str]:
    """A run's arguments inside a SLURM job: SLURM's ranks on ``nodes`` nodes, no Lightning
    requeue, and a checkpoint every ``every_n_steps`` steps (and at a stop signal's step) in
    a folder fixed by the run folder."""
    environment = {
        "class_path": "lightning.pytorch.plugins.environments.SLURMEnvironment",
        "init_args": {"auto_requeue": False},
    }
    checkpoint = {
        "class_path": "mtlscene.callbacks.requeue_checkpoint.RequeueCheckpoint",
        "init_args": {
            "path": str(run_dir / REQUEUE_DIR / REQUEUE_CHECKPOINT),
            "every_n_train_steps": every_n_steps,
        },
    }
    return [
        *args,
        f"--trainer.num_nodes={nodes}",
        f"--trainer.plugins={json.dumps(environment)}",
        f"--trainer.callbacks+={json.dumps(checkpoint)}",
    ]


def earlier_wall_time_s(run_dir: Path) -> float:
    """Seconds the run's earlier attempts took (their lines in ``attempts.jsonl``)."""
    path = run_dir / ATTEMPTS_FILE
    if not path.is_file():
        return 0.0
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(float(json.loads(line)["wall_time_s"]) for line in lines if line.strip())


def record_attempt(run_dir: Path, wall_time_s: float, outcome: str) -> None:
    """Append one attempt (its job, wall time and how it ended) to ``attempts.jsonl``."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    line = {
        "job_id": job,
        "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 3),
        "outcome": outcome,
    }
    with (run_dir / ATTEMPTS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def run_attempt(
    spec_path: str | Path, checkpoint_every_n_steps: int, nodes: int = 1
) -> RequeueRequested | None:
    """One attempt of a run inside a SLURM job: fit + test, resumed from its checkpoint.

    The stop signals are only recorded from here on (`STOP_REQUEST`, in this process
    alone); the attempt's wall time and how it ended go to ``attempts.jsonl`` (rank 0).

    Returns:
        The stop request when a signal stopped the run at a step (its checkpoint saved);
        None when it finished, now or in an earlier attempt.
    """
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    run_dir = Path(spec["run_dir"])
    if (run_dir / RESULT_FILE).is_file():
        return None  # finished by an earlier attempt of this job
    STOP_REQUEST.install()
    spec["args"] = job_args(spec["args"], run_dir, checkpoint_every_n_steps, nodes)
    resume = run_dir / REQUEUE_DIR / REQUEUE_CHECKPOINT
    if resume.is_file():
        print(f"resuming from {resume}", flush=True)
        spec["resume_from"] = str(resume)
    spec["earlier_wall_time_s"] = earlier_wall_time_s(run_dir)
    rank_zero = os.environ.get("SLURM_PROCID", "0") == "0"
    start = time.perf_counter()
    try:
        execute(spec)
    except RequeueRequested as stop:
        if rank_zero:
            name = signal.Signals(stop.signum).name if stop.signum else "a stop signal"
            outcome = f"{name}: checkpoint at step {stop.step}, stopped to requeue"
            record_attempt(run_dir, time.perf_counter() - start, outcome)
        return stop
    except BaseException as error:
        if rank_zero:
            record_attempt(run_dir, time.perf_counter() - start, f"failed: {error!r}"[:300])
        raise
    if rank_zero:
        record_attempt(run_dir, time.perf_counter() - start, "finished")
    return None


def requeue_once(submitit_requeue: Any, signum: int | None, note: str, holds: str) -> NoReturn:
    """Requeue the job once through submitit (rank 0; it counts time-limit requeues), exit.

    Args:
        submitit_requeue: submitit's USR2 handler, taken before ours replaced it.
        signum: the stop signal received.
        note: the line printed first (what was saved).
        holds: where the next attempt resumes from (for the messages).
    """
    print(note, flush=True)
    # Decided: the SIGTERM that `scontrol requeue` sends this job changes nothing now.
    for stop_signal in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(stop_signal, signal.SIG_IGN)
    if not callable(submitit_requeue):
        raise SystemExit(f"not under submitit, nothing requeues this job; {holds} holds it")
    try:
        # Rank 0: dumps this job's callable again, `scontrol requeue`, exits. Other ranks:
        # returns.
        submitit_requeue(signum or signal.SIGUSR2, None)
    except subprocess.CalledProcessError as error:
        # A cancelled job (scancel's SIGTERM) cannot be requeued, and need not be; one
        # that `scontrol requeue` or a preemption is requeueing already is.
        print(
            f"`scontrol requeue` refused ({error}): the job was cancelled or is being "
            f"requeued already; its next attempt, or running the experiment again, "
            f"resumes from {holds}",
            flush=True,
        )
        raise SystemExit(1) from None
    raise SystemExit(0)  # a rank other than 0: rank 0 requeues the whole job
