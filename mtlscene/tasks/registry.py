"""Task registry: ``@register_task("name")`` makes a TaskHead nameable from config."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable

from mtlscene.tasks.base import TaskHead

_REGISTRY: dict[str, type[TaskHead]] = {}


class UnknownTaskError(KeyError, ValueError):
    """A task name that no ``@register_task`` registered. A KeyError (a failed lookup) and a
    ValueError (a bad config value: the command line reports it as one line)."""

    def __str__(self) -> str:  # KeyError would show the message quoted, as a key
        return str(self.args[0]) if self.args else ""


def register_task(name: str) -> Callable[[type[TaskHead]], type[TaskHead]]:
    """Class decorator registering a TaskHead subclass under ``name``."""

    def decorator(cls: type[TaskHead]) -> type[TaskHead]:
        if not (isinstance(cls, type) and issubclass(cls, TaskHead)):
            raise TypeError(f"@register_task({name!r}) must decorate a TaskHead subclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(
                f"task name {name!r} is already registered by {existing.__module__}."
                f"{existing.__qualname__}; pick another name"
            )
        _REGISTRY[name] = cls
        cls.task_name = name
        return cls

    return decorator


def import_task_modules(modules: Iterable[str]) -> None:
    """Import modules whose import registers tasks (config: ``model.task_modules``)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"model.task_modules lists {module!r}, which cannot be imported ({error}); "
                "make sure it is installed or on PYTHONPATH"
            ) from error


def get_task(name: str) -> type[TaskHead]:
    """Look up a registered TaskHead class by name, with the known names in the error."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        close = difflib.get_close_matches(str(name), sorted(_REGISTRY), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UnknownTaskError(
            f"unknown task {name!r} in model.tasks{hint}; registered tasks: {known}. A new "
            "task needs @register_task in a module listed under model.task_modules"
        ) from None


def available_tasks() -> list[str]:
    """Names of all registered tasks."""
    return sorted(_REGISTRY)
