"""SLURM's query commands (``squeue``, ``sacct``, ``sbatch --test-only``) that survive a
controller blip, and one clear message when the controller is really down.

A controller restart or failover makes every client command fail for a few seconds. A
runner that waits hours for its jobs must not die of one failed look at the queue, so a
query is retried with backoff (`RETRY_DELAYS_S`: 15 s in all) before it counts as
failed.
"""

from __future__ import annotations

import getpass
import subprocess
import time
from collections.abc import Callable, Sequence

from mtlscene.experiments.executors.errors import ExecutorConfigError

# Seconds between the tries of a failed query: 1 + 2 + 4 + 8 = 15 s, longer than the
# ~8 s a controller takes to restart.
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
# What SLURM's clients print when they cannot reach slurmctld (lower case).
_UNREACHABLE = (
    "unable to contact slurm controller",
    "connect failure",
    "connection refused",
    "socket timed out",
    "zero bytes were transmitted or received",
    "slurm_receive_msg",
)


class SlurmUnavailable(ExecutorConfigError):
    """A SLURM command kept failing (the message names the command and SLURM's words)."""


def controller_unreachable(message: str) -> bool:
    """Whether a SLURM client's error says that it could not reach the controller."""
    lowered = message.lower()
    return any(pattern in lowered for pattern in _UNREACHABLE)


def unreachable_message(command: str, output: str) -> str:
    """The one line shown when the controller does not answer."""
    return (
        f"the SLURM controller is unreachable (`{command}`: {output}): check that slurmctld "
        "runs (`scontrol ping`; the test cluster: bash .ci/slurm.sh start)"
    )


def run_query(
    command: Sequence[str],
    retry_if: Callable[[subprocess.CompletedProcess], bool] | None = None,
    delays: Sequence[float] | None = None,
) -> subprocess.CompletedProcess:
    """Run a SLURM query, trying again after each of ``delays`` seconds when it fails.

    Args:
        command: the command line.
        retry_if: which failures to retry (default: any non-zero exit). A refusal that
            will not change (a bad partition) is not worth 15 s of retries.
        delays: the waits between tries (default `RETRY_DELAYS_S`).

    Returns:
        The first successful result, or the last failed one when ``retry_if`` declined it.

    Raises:
        SlurmUnavailable: it still failed after the last retry.
    """
    delays = RETRY_DELAYS_S if delays is None else tuple(delays)
    result = None
    for delay in (*delays, None):
        result = subprocess.run(list(command), capture_output=True, text=True, check=False)
        if result.returncode == 0 or (retry_if is not None and not retry_if(result)):
            return result
        if delay is not None:
            time.sleep(delay)
    output = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
    if controller_unreachable(output):
        raise SlurmUnavailable(unreachable_message(command[0], output))
    raise SlurmUnavailable(
        f"`{' '.join(command[:2])} ...` failed {len(delays) + 1} times over "
        f"{sum(delays):.0f} s: {output}"
    )


def squeue(user: str | None = None) -> dict[str, tuple[str, str]]:
    """Job id -> (state, elapsed) of the user's jobs (array tasks one per line)."""
    result = run_query(["squeue", "-h", "-r", "-u", user or getpass.getuser(), "-o", "%i|%T|%M"])
    queue = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            queue[parts[0]] = (parts[1], parts[2])
    return queue


def sacct_states(job_ids: Sequence[str]) -> dict[str, str]:
    """Job id -> final state (``COMPLETED``, ``CANCELLED``, ...) from SLURM's accounting.

    Empty when the cluster keeps no accounting (``AccountingStorageType=none``, as the test
    cluster): the run folder's ``result.json`` stays the one truth for "finished".
    """
    if not job_ids:
        return {}
    try:
        result = run_query(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
            retry_if=lambda failed: "accounting storage is disabled" not in failed.stderr.lower(),
        )
    except SlurmUnavailable:
        return {}
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state.split()[0]
    return states


__all__ = [
    "RETRY_DELAYS_S",
    "SlurmUnavailable",
    "controller_unreachable",
    "run_query",
    "sacct_states",
    "squeue",
    "unreachable_message",
]
