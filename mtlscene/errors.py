"""User errors: bad configs, options, checkpoints and data end in one short message.

A user error names the file or option and the fix; the console entry points print it
without a traceback. Set ``MTLSCENE_DEBUG=1`` to see the traceback as well (for developers
and bug reports).
"""

from __future__ import annotations

import os
import re
import sys

from mtlscene.data.io import DatasetFileError

DEBUG_VARIABLE = "MTLSCENE_DEBUG"
DEBUG_HINT = f"(set {DEBUG_VARIABLE}=1 to see the traceback)"


class ConfigError(ValueError):
    """A config file or command-line option is wrong; the message names it and the fix."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used as given; the message names the file and the fix."""


# What the console entry points report as one message (everything else is a bug: traceback).
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, DatasetFileError)


def debug_requested() -> bool:
    """Whether ``MTLSCENE_DEBUG`` asks for tracebacks of user errors."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def report(error: BaseException, prog: str) -> int:
    """Print ``error`` as one short message on stderr and return the exit status (2)."""
    sys.stderr.write(f"{prog}: error: {worker_message(str(error))}\n{DEBUG_HINT}\n")
    sys.stderr.flush()
    return 2


# A DataLoader worker's error comes back as the same class with the worker's whole
# traceback as its message; the user needs its last sentence.
_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s*\nOriginal Traceback")
_RAISED = re.compile(r"^(?:\w+\.)*\w+: ", re.MULTILINE)


def worker_message(message: str) -> str:
    """``message`` without the DataLoader worker's traceback around it (else unchanged)."""
    if not _WORKER.match(message):
        return message
    raised = list(_RAISED.finditer(message))
    return message[raised[-1].end() :].strip() if raised else message


_UNION_HEADER = "Does not validate against any of the Union subtypes"


def plain_message(error: BaseException) -> str:
    """The sentence a user needs from an error jsonargparse wrapped in its Union report.

    jsonargparse tries each member of ``X | None`` and lists every failure ("Expected a
    <class 'NoneType'>", the given Namespace...); only the class's own message says what is
    wrong. Nested reports are unwrapped to their innermost sentence.
    """
    message = str(error)
    while _UNION_HEADER in message:
        reasons = [
            line.strip()[2:]
            for line in message.splitlines()
            if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
        ]
        if not reasons:
            break
        message = reasons[0]
    # jsonargparse prefixes the key it was parsing: keep it, it names the option.
    return re.sub(r"\s+Given value.*$", "", message, flags=re.DOTALL)


__all__ = [
    "DEBUG_VARIABLE",
    "USER_ERRORS",
    "CheckpointError",
    "ConfigError",
    "debug_requested",
    "plain_message",
    "report",
    "worker_message",
]
