"""The error every executor raises when it cannot run as configured."""

from __future__ import annotations


class ExecutorConfigError(ValueError):
    """An executor cannot run as configured (the message names the option and the fix)."""
