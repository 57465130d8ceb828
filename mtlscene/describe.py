"""Plain-data descriptions of injected parts (``class_path``/``init_args``), for checkpoints.

A checkpoint must say how to rebuild the backbone, weighting and clustering it was trained
with, but storing the objects themselves would need pickle (and ``weights_only=False``).
Parts that inherit `RecordsInitArgs` remember the arguments they were built with,
and `describe` turns them into the same ``class_path``/``init_args`` form that the
YAML configs use: plain data that ``torch.load(weights_only=True)`` reads and jsonargparse
rebuilds.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, ClassVar


class RecordsInitArgs:
    """Mixin: remembers the keyword arguments the object was constructed with.

    Subclasses may list in ``rebuild_without`` arguments that a checkpoint supersedes
    (e.g. a pretrained-weights file: the state dict carries the trained weights), so a
    checkpoint loads on a machine without that file.
    """

    rebuild_without: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, *args: Any, **kwargs: Any):
        instance = super().__new__(cls)
        # object.__setattr__: nn.Module's __setattr__ needs its own __init__ to have run.
        object.__setattr__(instance, "_init_arguments", _bind(cls, instance, args, kwargs))
        return instance


def _bind(cls: type, instance: object, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(instance, *args, **kwargs)
    except TypeError:
        return None  # __init__ itself reports the bad call; copy/pickle call __new__ bare
    arguments: dict[str, Any] = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if index == 0:
            continue  # self
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None  # positional varargs have no name to put in init_args
        elif kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    return arguments


class _Undescribable(Exception):
    pass


def describe(part: object) -> dict[str, Any] | None:
    """``{"class_path": ..., "init_args": {...}}`` of a part, or None when it cannot be.

    A part can be described when it inherits `RecordsInitArgs` and every argument it
    was built with is plain data (numbers, strings, lists, mappings, paths, enums) or
    itself a describable part.
    """
    try:
        return _describe(part)
    except _Undescribable:
        return None


def _describe(part: object) -> dict[str, Any]:
    arguments = getattr(part, "_init_arguments", None)
    if arguments is None:
        raise _Undescribable
    skip = getattr(type(part), "rebuild_without", ())
    cls = type(part)
    return {
        "class_path": f"{cls.__module__}.{cls.__qualname__}",
        "init_args": {name: _plain(v) for name, v in arguments.items() if name not in skip},
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, Enum):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise _Undescribable
        return {key: _plain(item) for key, item in value.items()}
    return _describe(value)


__all__ = ["RecordsInitArgs", "describe"]
