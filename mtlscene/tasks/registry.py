"""Task registry: ``@register_task("name")`` makes a TaskHead nameable from config."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from mtlscene.tasks.base import TaskHead

_REGISTRY: dict[str, type[TaskHead]] = {}


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
        raise KeyError(
            f"unknown task {name!r} in model.tasks; registered tasks: {known}. A new task "
            "needs @register_task in a module listed under model.task_modules"
        ) from None


def available_tasks() -> list[str]:
    """Names of all registered tasks."""
    return sorted(_REGISTRY)
