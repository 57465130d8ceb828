"""``mtlscene-experiment status|cancel OUT``: an output folder's runs and their jobs.

A run is *finished* when its folder has ``result.json`` (the one truth, whatever ran it),
*running* or *pending* while its SLURM job (``job.json``) is in the queue (a local run:
*running* while its runner holds the folder, *interrupted* when it no longer does),
*failed* when it left ``failed.json`` or its job ended without a result, and *not started*
otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mtlscene.experiments.executors.slurm import log_tail, read_job, squeue
from mtlscene.experiments.plan import FAILED_FILE
from mtlscene.experiments.reuse import SPEC_FILE
from mtlscene.experiments.runner import LOCK_FILE
from mtlscene.experiments.single_run import RESULT_FILE
from mtlscene.filelock import LockedError, exclusive_lock


@dataclass(frozen=True)
class RunStatus:
    """Where one run of an output folder stands."""

    row: str
    seed: int
    state: str
    job_id: str = ""
    elapsed: str = ""
    log: str = ""


def _queue() -> dict[str, tuple[str, str]] | None:
    if shutil.which("squeue") is None:
        return None
    try:
        return squeue()
    except RuntimeError:
        return None


def _local_runner_active(out_dir: Path) -> bool:
    """Whether a local runner holds the folder (its runs without a result are in progress)."""
    if not (out_dir / LOCK_FILE).is_file():
        return False
    try:
        with exclusive_lock(out_dir / LOCK_FILE, wait=False):
            return False
    except LockedError:
        return True


def run_statuses(out_dir: Path) -> list[RunStatus]:
    """Every run folder under ``out_dir/runs`` with its state."""
    queue = _queue()
    local_active = _local_runner_active(out_dir)
    statuses = []
    for spec_path in sorted(out_dir.glob(f"runs/*/seed*/{SPEC_FILE}")):
        run_dir = spec_path.parent
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        job = read_job(run_dir) or {}
        job_id = job.get("job_id", "")
        log = job.get("stdout") or str(run_dir / "run.log")
        live = queue.get(job_id) if queue is not None and job_id else None
        elapsed = ""
        if (run_dir / RESULT_FILE).is_file():
            state = "finished"
            result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
            if "wall_time_s" in result:
                elapsed = f"{result['wall_time_s']:.0f}s"
        elif live is not None:
            state = "running" if live[0] in ("RUNNING", "COMPLETING") else "pending"
            elapsed = live[1]
        elif (run_dir / FAILED_FILE).is_file():
            state = "failed"
            log = json.loads((run_dir / FAILED_FILE).read_text(encoding="utf-8"))["log"]
        elif job_id and queue is not None:
            state = "failed"  # the job left the queue without a result
            log = job.get("stderr", log)
        elif not job_id and (run_dir / "run.log").is_file():
            # A local run: in progress while its runner holds the folder, else interrupted.
            state = "running" if local_active else "interrupted"
        else:
            state = "not started"
        statuses.append(RunStatus(str(spec["row"]), int(spec["seed"]), state, job_id, elapsed, log))
    return statuses


def main(command: str, out_dir: Path) -> int:
    """Print the status table (``status``) or cancel the live jobs (``cancel``)."""
    if not (out_dir / "runs").is_dir():
        raise SystemExit(f"{out_dir}: no runs/ folder; pass an experiment's --out folder")
    statuses = run_statuses(out_dir)
    if command == "cancel":
        # Runs packed into one job share its id: cancel it once.
        live = list(dict.fromkeys(s.job_id for s in statuses if s.state in ("running", "pending")))
        if not live:
            print(f"{out_dir}: no queued or running SLURM jobs")
            return 0
        subprocess.run(["scancel", *live], check=True)
        print(f"cancelled {len(live)} job(s): {' '.join(live)}")
        return 0
    counts: dict[str, int] = {}
    width = max([len(s.row) for s in statuses] + [3])
    print(f"{'row':<{width}}  seed  {'state':<11}  {'job':<10}  {'elapsed':>9}  log")
    for status in statuses:
        counts[status.state] = counts.get(status.state, 0) + 1
        print(
            f"{status.row:<{width}}  {status.seed:>4}  {status.state:<11}  {status.job_id:<10}  "
            f"{status.elapsed:>9}  {status.log}"
        )
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for status in statuses:
        if status.state == "failed":
            print(f"\n--- {status.row} seed {status.seed} failed; end of {status.log}:")
            print(log_tail(status.log))
    return 1 if counts.get("failed") else 0
