"""Parser errors rewritten as one sentence: the option, what is wrong, the closest valid one."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mtlscene.config_check import suggest
from mtlscene.errors import plain_message

_UNRECOGNIZED = re.compile(r"unrecognized arguments:\s*(?P<args>.*)", re.DOTALL | re.IGNORECASE)
_NOT_ACCEPTED = re.compile(r"does not accept option '(?P<key>[^']+)'")
_PARSER_KEY = re.compile(r'Parser key "(?P<key>[^"]+)"')
_GIVEN = re.compile(r"Given value: (?P<value>.*)")
_UNION = "Does not validate against any of the Union subtypes"


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
    parser_key = _PARSER_KEY.search(message)
    if parser_key:
        return _bad_value(parser_key["key"], message)
    return plain_message(ValueError(message))


def _bad_value(key: str, message: str) -> str:
    """``--key: what is wrong (got VALUE)`` from jsonargparse's report of a rejected value."""
    given = _GIVEN.search(message)
    reasons = [
        line.strip()[2:]
        for line in message.splitlines()
        if line.strip().startswith("- ")
        and "NoneType" not in line
        and _UNION not in line
        and not line.strip()[2:].startswith("Expected a path but")
    ]
    reason = reasons[0] if reasons else "not a valid value"
    if reason.startswith("Expected a dot import path string"):
        reason = "no such class: give its import path (e.g. mtlscene.weighting.DWAWeighting)"
        reason += " or a config file (presets under configs/)"
    reason = re.sub(r"<class '([\w.]+)'>", r"\1", reason).replace("Expected a ", "expected ")
    got = f" (got {given['value'].strip()!r})" if given else ""
    return f"--{key}: {reason}{got}"


def _key(arg: str) -> str:
    return arg.split("=")[0].lstrip("-")


def _dashed(suggestion: str) -> str:
    return suggestion.replace("did you mean ", "did you mean --")


__all__ = ["short_parser_message"]
