"""USR2 and SIGTERM as a request to stop at the next training step, in the main process only.

SLURM signals every process of a job step, DataLoader workers included, and a forked worker
inherits the Python signal handlers of the process it was forked from. A handler that acted
(saved, requeued, exited) would run once per worker; this one only records the signal, and
only in the process that installed it, so a worker that receives it ignores it and keeps
serving batches until the main process shuts it down.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

# Preemption and a time limit's warning (submitit's --signal=USR2@N), and the SIGTERM that
# SLURM sends before killing a job (preemption, `scontrol requeue`, `scancel`).
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class RequeueRequested(Exception):
    """A signalled run saved its checkpoint at a step boundary and stops so it can requeue.

    Attributes:
        signum: the signal that asked for it (None when another DDP rank received it).
        step: the global step the checkpoint holds.
        path: the checkpoint file.
    """

    def __init__(self, signum: int | None, step: int, path: Path) -> None:
        name = (
            signal.Signals(signum).name if signum is not None else "a stop signal on another rank"
        )
        super().__init__(f"{name}: checkpoint at step {step} saved to {path}; stopping to requeue")
        self.signum = signum
        self.step = step
        self.path = path


class StopRequest:
    """Remembers the first of `STOP_SIGNALS` that reaches the installing process."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether this process received a stop signal since it installed the handler."""
        return self.signum is not None and self.pid == os.getpid()

    def install(self) -> dict[int, Any]:
        """Route the stop signals here (again: Lightning takes SIGTERM over at fit start).

        Returns:
            The handlers it replaced (for `restore`); empty outside the main thread,
            where Python cannot set signal handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.signum = None
        return {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}

    @staticmethod
    def restore(previous: dict[int, Any]) -> None:
        """Put back the handlers `install` replaced."""
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)

    def clear(self) -> None:
        """Forget a received signal (acted on, or the fit it asked to stop has ended)."""
        self.signum = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:
            return  # a forked DataLoader worker: the main process alone stops and requeues
        if self.signum is None:
            # Nothing else here (no print): the main process may be inside a write to the
            # same stream, and a handler must not reenter it.
            self.signum = signum


# Signal handlers belong to the process, so there is one request per process.
STOP_REQUEST = StopRequest()

__all__ = ["STOP_REQUEST", "STOP_SIGNALS", "RequeueRequested", "StopRequest"]
