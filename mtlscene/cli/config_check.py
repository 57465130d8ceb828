"""Check ``--config`` files before parsing: every problem of a file at once, file named.

jsonargparse stops at the first unknown key of a config, says ``"<unicode string>"`` for a
YAML syntax error, and prints the usage of 1,400 options around it. This reads each file
first and reports all its unknown keys with the closest valid names ("did you mean").
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mtlscene.errors import ConfigError


def suggest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``valid`` to ``name``, or ``""``."""
    valid = list(valid)
    leaf = name.rpartition(".")[2]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.75)
    if not close:  # compare the last part only: "trainer.max_epoch" vs "max_epochs"
        by_leaf = {v.rpartition(".")[2]: v for v in valid if v.startswith(name.rpartition(".")[0])}
        leaves = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.7)
        close = [by_leaf[leaves[0]]] if leaves else []
    return f" (did you mean {close[0]}?)" if close else ""


def read_config(path: str) -> Any:
    """The YAML content of a ``--config`` file; ConfigError naming the file and the line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file; check the path")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not a text (YAML) file: {error}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ConfigError(
            f"{path}{where}: YAML syntax error: {detail}; fix the YAML there (a missing "
            "bracket, quote or colon, or tabs used for indentation)"
        ) from error


def _resolve(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    if not module:
        return None  # a short name jsonargparse resolves itself
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None  # jsonargparse says which class is missing
    return value if isinstance(value, type) else None


def init_parameters(cls: type) -> set[str] | None:
    """Names ``cls(...)`` accepts, or None when it takes ``**kwargs`` (anything goes)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


class ConfigKeys:
    """The keys one subcommand accepts, from its parser's options.

    Args:
        options: the parser's option names without dashes (``trainer.max_epochs``,
            ``model.weighting``, ``data``...).
        data_class: the class path of the data module plain ``data:`` arguments belong to.
    """

    def __init__(self, options: Iterable[str], data_class: str | None = None) -> None:
        self.options = {o for o in options if o and o not in ("help", "config", "print_config")}
        self.data_class = data_class

    def unknown(self, content: Any) -> list[str]:
        """Every unknown key in a config's ``content``, each with a suggestion."""
        if not isinstance(content, Mapping):
            return []
        problems: list[str] = []
        self._walk(content, "", problems)
        return problems

    def _walk(self, content: Mapping, prefix: str, problems: list[str]) -> None:
        for key, value in content.items():
            name = f"{prefix}{key}"
            nested = any(option.startswith(name + ".") for option in self.options)
            if nested and isinstance(value, Mapping) and "class_path" not in value:
                if name != "data":  # data's keys belong to its class; checked below
                    self._walk(value, name + ".", problems)
                    continue
            if name in self.options or nested:
                self._check_value(name, value, problems)
            else:
                problems.append(f"{name}{suggest(name, self.options)}")

    def _check_value(self, name: str, value: Any, problems: list[str]) -> None:
        if name == "data" and isinstance(value, Mapping):
            if "class_path" in value:
                self.data_class = str(value["class_path"])
                self._check_class(name, value, problems)
            elif self.data_class is not None:  # plain arguments of the current data module
                args = {k: v for k, v in value.items() if k != "init_args"}
                init = value.get("init_args", {})
                merged = {**(init if isinstance(init, Mapping) else {}), **args}
                self._check_class(
                    name,
                    {"class_path": self.data_class, "init_args": merged},
                    problems,
                    prefix=name,
                )
            return
        if isinstance(value, Mapping) and "class_path" in value:
            self._check_class(name, value, problems)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping) and "class_path" in item:
                    self._check_class(f"{name}[{index}]", item, problems)

    def _check_class(
        self, name: str, value: Mapping, problems: list[str], prefix: str | None = None
    ) -> None:
        for key in value:
            if key not in ("class_path", "init_args", "dict_kwargs", "__path__"):
                problems.append(f"{name}.{key} (a class is given as class_path and init_args)")
        cls = _resolve(str(value["class_path"]))
        init_args = value.get("init_args") or {}
        accepted = init_parameters(cls) if cls is not None else None
        if accepted is None or not isinstance(init_args, Mapping):
            return
        where = prefix or f"{name}.init_args"
        for key in init_args:
            if key not in accepted:
                problems.append(
                    f"{where}.{key}: {cls.__name__} has no argument {key!r}"
                    f"{suggest(key, sorted(accepted))}"
                )


def config_paths(args: list[str]) -> list[str]:
    """The ``--config`` files of a command line, in order."""
    paths = []
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            paths.append(args[index + 1])
        elif arg.startswith("--config="):
            paths.append(arg.partition("=")[2])
    return paths


def key_source(args: list[str], key: str) -> str | None:
    """The last ``--config`` file or option of a command line that sets ``key``.

    ``init_args`` may be left out on either side: ``model.weighting.init_args.weights``
    is set by ``model: {weighting: {init_args: {weights: ...}}}`` and by
    ``--model.weighting.weights``; an option setting a parent (``--model.weighting``) counts.

    Args:
        args: the command line (after the subcommand).
        key: a dotted config key, e.g. ``model.weighting.init_args.weights.semantic``.

    Returns:
        The file's path, ``--option`` for an option, or None when neither sets it.
    """
    wanted = _without_init_args(key)
    source = None
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") or arg.startswith("--config="):
            path = args[index + 1] if "=" not in arg and index + 1 < len(args) else ""
            path = path or arg.partition("=")[2]
            if path.lstrip().startswith(("{", "[")) or "\n" in path:
                continue  # an inline config string
            try:
                content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if _sets(content, wanted.split(".")):
                source = path
        elif arg.startswith("--"):
            option = _without_init_args(arg[2:].partition("=")[0])
            if wanted == option or wanted.startswith(option + "."):
                source = "--" + arg[2:].partition("=")[0]
    return source


def _without_init_args(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "init_args")


def _sets(content: Any, parts: list[str]) -> bool:
    """Whether a YAML ``content`` holds the key ``parts`` (``init_args`` levels skipped)."""
    if not parts:
        return True
    if not isinstance(content, Mapping):
        return False
    if parts[0] in content and _sets(content[parts[0]], parts[1:]):
        return True
    return isinstance(content.get("init_args"), Mapping) and _sets(content["init_args"], parts)


def check_config_files(args: list[str], keys: ConfigKeys, prog: str) -> None:
    """Raise one ConfigError listing every problem of the first ``--config`` file with any.

    Args:
        args: the command line (after the subcommand).
        keys: the keys the subcommand accepts.
        prog: the command's name, for the help pointer.
    """
    for path in config_paths(args):
        if path.lstrip().startswith(("{", "[")) or "\n" in path:
            continue  # an inline config string; jsonargparse parses and reports it
        unknown = keys.unknown(read_config(path))
        if unknown:
            listed = "\n".join(f"  - {problem}" for problem in unknown)
            raise ConfigError(
                f"{path}: {len(unknown)} unknown key{'s' if len(unknown) > 1 else ''}:\n"
                f"{listed}\nFix the names in {path}; `{prog} --help` lists every option."
            )


__all__ = [
    "ConfigKeys",
    "check_config_files",
    "config_paths",
    "key_source",
    "read_config",
    "suggest",
]
