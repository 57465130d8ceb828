"""Parser errors rewritten as one sentence: the option, what is wrong, the closest valid one."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mtlscene.config_check import suggest
from mtlscene.errors import plain_message

_UNRECOGNIZED = re.compile(r"unrecognized arguments:\s*(?P<args>.*)", re.DOTALL | re.IGNORECASE)
_NOT_ACCEPTED = re.compile(r"does not accept option '(?P<key>[^']+)'")


def short_parser_message(message: str, options: Iterable[str]) -> str:
    """``message`` (from jsonargparse/argparse) cut to what a user needs, with "did you mean".

    Args:
        message: the parser's error message.
        options: the option strings the parser accepts (``--trainer.max_epochs``...).
    """
    names = sorted({o.lstrip("-") for o in options if o.startswith("--")})
    unrecognized = _UNRECOGNIZED.search(message)
    if unrecognized:
        given = [a for a in unrecognized["args"].split() if a.startswith("-")]
        if given:
            parts = [f"{a.split('=')[0]}{_dashed(suggest(_key(a), names))}" for a in given]
            return (
                f"unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)} "
                "(options are matched exactly, never by prefix)"
            )
    not_accepted = _NOT_ACCEPTED.search(message)
    if not_accepted:
        key = not_accepted["key"]
        return f"unknown option --{key}{_dashed(suggest(key, names))}"
    return plain_message(ValueError(message))


def _key(arg: str) -> str:
    return arg.split("=")[0].lstrip("-")


def _dashed(suggestion: str) -> str:
    return suggestion.replace("did you mean ", "did you mean --")


__all__ = ["short_parser_message"]
