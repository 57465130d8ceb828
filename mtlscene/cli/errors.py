"""Parser errors rewritten as one sentence: the option, what is wrong, the closest valid one."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mtlscene.cli.config_check import key_source, suggest
from mtlscene.errors import plain_message

_UNRECOGNIZED = re.compile(r"unrecognized arguments:\s*(?P<args>.*)", re.DOTALL | re.IGNORECASE)
_NOT_ACCEPTED = re.compile(r"does not accept option '(?P<key>[^']+)'")
_PARSER_KEY = re.compile(r'Parser key "(?P<key>[^"]+)"')
_GIVEN = re.compile(r"Given value: (?P<value>.*)")
_UNION = "Does not validate against any of the Union subtypes"
_CLASS_PATH = re.compile(
    r"Problem with given class_path '(?P<path>[^']+)'|Expected a dot import path string: "
    r"(?P<name>\S+)"
)
_SUBTYPE = re.compile(r"Subtypes: \[<class '(?P<base>[\w.]+)'>")
# A constructor's refusal that names its argument as ``ClassName.argument[.entry]``.
_CLASS_KEY = re.compile(r"^(?P<cls>[A-Z]\w*)\.(?P<key>[A-Za-z_][\w.]*)")
_CONFIG_KEY = re.compile(r"^(?P<key>(?:model|data|trainer)\.[A-Za-z_][\w.]*)")


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
    missing_class = _CLASS_PATH.search(message)
    if missing_class:
        return _no_such_class(key, missing_class["path"] or missing_class["name"], message)
    reason = re.sub(r"<class '([\w.]+)'>", r"\1", reason).replace("Expected a ", "expected ")
    got = f" (got {given['value'].strip()!r})" if given else ""
    return f"--{key}: {reason}{got}"


def _no_such_class(key: str, given: str, message: str) -> str:
    """``--key: no such class X (did you mean Y?); the choices: ...`` for a class path that
    does not import, listing the project's classes of the type the option takes."""
    base = _SUBTYPE.search(message)
    choices = _subclasses(base["base"]) if base else []
    by_name = {path.rpartition(".")[2]: path for path in choices}
    close = _closest(given.rpartition(".")[2], list(by_name))
    hint = f" (did you mean {by_name[close]}?)" if close else ""
    if choices:
        package = choices[0].rpartition(".")[0]
        listed = f"; the choices are {package}.{{{', '.join(by_name)}}}"
    else:
        listed = "; give a class's import path"
    return f"--{key}: no such class {given!r}{hint}{listed}, or a config (presets under configs/)"


def _subclasses(base_path: str) -> list[str]:
    """Import paths of the concrete classes the package of ``base_path`` exports that derive
    from it (``mtlscene.weighting.base.LossWeighting`` -> ``mtlscene.weighting.DWAWeighting``
    ...); empty outside this project (Lightning's classes are not listed)."""
    if not base_path.startswith("mtlscene."):
        return []
    module_name, _, name = base_path.rpartition(".")
    package_name = module_name.rpartition(".")[0] or module_name
    try:
        base = getattr(importlib.import_module(module_name), name)
        package = importlib.import_module(package_name)
    except (ImportError, AttributeError):
        return []
    exported = getattr(package, "__all__", dir(package))
    found = []
    for attribute in exported:
        value = getattr(package, attribute, None)
        if (
            isinstance(value, type)
            and issubclass(value, base)
            and value is not base
            and not inspect.isabstract(value)
        ):
            found.append(f"{package_name}.{attribute}")
    return sorted(found)


def _closest(name: str, choices: list[str]) -> str | None:
    """The choice ``name`` most likely means: the same letters ignoring case and ``_``, a
    unique prefix (``DWA`` -> ``DWAWeighting``, ``imtl_l`` -> ``IMTLLWeighting``), else the
    closest spelling."""
    plain = {choice: choice.lower().replace("_", "") for choice in choices}
    wanted = name.lower().replace("_", "")
    if not wanted:
        return None
    same = [choice for choice, text in plain.items() if text == wanted]
    prefixed = sorted((c for c, text in plain.items() if text.startswith(wanted)), key=len)
    if same or prefixed:
        return (same or prefixed)[0]
    # Spelling compared without the suffix every choice shares ("weighting"): otherwise
    # NoSuchWeighting would be "close" to NashMTLWeighting by that suffix alone.
    shared = os.path.commonprefix([text[::-1] for text in plain.values()])[::-1]
    shared = shared if len(plain) > 1 else ""
    stems = {c: text[: len(text) - len(shared)] for c, text in plain.items()}
    wanted = wanted.removesuffix(shared) if shared else wanted
    close = difflib.get_close_matches(wanted, list(stems.values()), n=1, cutoff=0.6)
    return next((c for c, text in stems.items() if close and text == close[0]), None)


def locate(message: str, config: Mapping[str, Any], args: list[str]) -> str:
    """A constructor's refusal with the config key and the file that set it.

    ``FixedWeighting.weights.semantic must be >= 0`` becomes ``neg.yaml:
    model.weighting.init_args.weights.semantic must be >= 0``: the class is found in the
    resolved ``config``, the file (or option) among ``args``, the last one setting the key.
    A message that already starts with a config key (``data.size ...``) gets the file only.

    Args:
        message: the constructor's message.
        config: the resolved config of the subcommand, as nested dicts.
        args: the command line (``--config`` files and options, in order).
    """
    key = None
    named = _CLASS_KEY.match(message)
    if named:
        places = [
            path
            for path, class_path in _class_nodes(config, "")
            if class_path.rpartition(".")[2] == named["cls"]
        ]
        if len(places) == 1:
            key = f"{places[0]}.init_args.{named['key']}"
            message = key + message[named.end() :]
    else:
        full = _CONFIG_KEY.match(message)
        key = full["key"] if full else None
    source = key_source(args, key) if key else None
    if source is None or source.startswith("--"):
        return message  # set on the command line (named in the message) or nowhere
    return f"{source}: {message}"


def _class_nodes(value: Any, path: str) -> Iterable[tuple[str, str]]:
    """(config key, class path) of every class given in a resolved config."""
    if isinstance(value, Mapping):
        if isinstance(value.get("class_path"), str) and path:
            yield path, value["class_path"]
        for name, item in value.items():
            if name != "class_path":
                yield from _class_nodes(item, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _class_nodes(item, f"{path}[{index}]")


def _key(arg: str) -> str:
    return arg.split("=")[0].lstrip("-")


def _dashed(suggestion: str) -> str:
    return suggestion.replace("did you mean ", "did you mean --")


__all__ = ["locate", "short_parser_message"]
