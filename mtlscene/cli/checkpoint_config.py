"""A checkpoint's model against the model a config describes: which one runs.

Policy (``mtlscene validate|test|predict|fit --ckpt_path``):

- The checkpoint's network is what runs. Without model settings of your own (no ``model:``
  in your configs, no ``--model.*``), it is used as saved.
- Where your configs or options describe the network (``model.backbone``, ``model.tasks``,
  ``model.active_tasks``, ``model.weighting``, ``model.task_modules``,
  ``model.branch_point``) differently from the
  checkpoint, the command stops before any work and names both values: evaluating a
  different model than the one you wrote would report numbers for the wrong thing, and
  building yours would leave weights unused or missing.
- Evaluation settings that hold no weights (``model.clustering``, ``model.panoptic``,
  ``model.instance_ap``, ``model.panoptic_quality``, ``model.check_finite``) follow what you
  wrote; what you left unset comes from the checkpoint.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtlscene.errors import CheckpointError

# Keys that decide the trained weights (and the loss they were trained with).
NETWORK_KEYS = ("backbone", "tasks", "weighting", "task_modules", "branch_point")
# What a checkpoint saved before a network key existed was trained with.
SAVED_BEFORE = {"branch_point": "aspp"}
# Keys that only change how outputs are post-processed or checked.
EVALUATION_KEYS = ("clustering", "panoptic", "instance_ap", "panoptic_quality", "check_finite")


def load_checkpoint(path: str) -> dict[str, Any]:
    """A Lightning checkpoint's content (tensors and plain data only), or CheckpointError.

    Raises:
        CheckpointError: ``path`` is not a file ``torch.save`` wrote, or holds no
            ``state_dict`` (not a Lightning training checkpoint).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise CheckpointError(
            f"--ckpt_path {path} is not a checkpoint (torch cannot read it: "
            f"{type(error).__name__}); pass a .ckpt that `mtlscene fit` wrote, e.g. "
            "runs/<run>/logs/version_0/checkpoints/last.ckpt"
        ) from error
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"--ckpt_path {path} holds no Lightning state_dict (plain weights or another "
            "program's file); pass a .ckpt that `mtlscene fit` wrote, or load raw weights "
            "with MultiTaskModule(...).load_state_dict in Python"
        )
    return dict(checkpoint)


def _class_of(class_path: Any) -> Any:
    if not isinstance(class_path, str) or "." not in class_path:
        return class_path
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return class_path


def _plain(value: Any) -> Any:
    """Comparable plain data: classes resolved, defaults filled, tuples as lists."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, Mapping):
        if "class_path" in value:
            cls = _class_of(value["class_path"])
            args = dict(_plain(value.get("init_args") or {}))
            if isinstance(cls, type):
                try:
                    for name, parameter in inspect.signature(cls).parameters.items():
                        if parameter.default is not inspect.Parameter.empty:
                            args.setdefault(name, _plain(parameter.default))
                except (TypeError, ValueError):
                    pass
                cls = f"{cls.__module__}.{cls.__qualname__}"
            return {"class_path": cls, "init_args": args}
        return {str(k): _plain(v) for k, v in value.items() if k != "__path__"}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _trained_tasks(model: Mapping[str, Any], default_tasks: Mapping) -> dict[str, Any]:
    tasks = _plain(model.get("tasks") or default_tasks)
    active = model.get("active_tasks")
    names = list(active) if active else list(tasks)
    return {name: tasks.get(name) or {} for name in names}


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and "class_path" in value:
        name = str(value["class_path"]).rpartition(".")[2]
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(value["init_args"].items()))
        return f"{name}({args})"
    return repr(value)


def _differences(user: Any, saved: Any, key: str) -> list[str]:
    """Dotted keys where two plain values differ, with both values."""
    if isinstance(user, Mapping) and isinstance(saved, Mapping):
        if "class_path" in user or "class_path" in saved:
            if user.get("class_path") != saved.get("class_path"):
                return [f"{key}: checkpoint {_short(saved)}, yours {_short(user)}"]
            user, saved = user.get("init_args", {}), saved.get("init_args", {})
            key = f"{key}.init_args"
        if set(user) != set(saved):
            return [f"{key}: checkpoint {sorted(saved)}, yours {sorted(user)}"]
        found: list[str] = []
        for name in user:
            found += _differences(user[name], saved[name], f"{key}.{name}")
        return found
    if user != saved:
        return [f"{key}: checkpoint {saved!r}, yours {user!r}"]
    return []


def reconcile(
    path: str,
    hparams: Mapping[str, Any],
    user: Mapping[str, Any],
    defaults: Mapping[str, Any],
    default_tasks: Mapping[str, Any],
) -> dict[str, Any]:
    """The hyperparameters to merge into the config; CheckpointError where the checkpoint's
    network differs from the one the user's config describes.

    Args:
        path: the checkpoint file, for the message.
        hparams: the checkpoint's ``hyper_parameters`` (without ``_instantiator``).
        user: ``model`` of the parsed config (the user's files and options over defaults).
        defaults: ``model`` of the parser's defaults (what nobody wrote).
        default_tasks: the tasks a model without ``model.tasks`` trains.

    Returns:
        ``hparams`` without the evaluation settings the user set (theirs apply).
    """
    user, defaults = _plain(user), _plain(defaults)
    written = {key for key in user if user.get(key) != defaults.get(key)}
    problems: list[str] = []
    if written & {"tasks", "active_tasks"} and "tasks" in hparams:
        saved = _plain(dict(hparams))
        # Tasks left unset by the user are the checkpoint's (only active_tasks was written).
        mine = user if "tasks" in written else {**user, "tasks": saved.get("tasks")}
        mine, theirs = _trained_tasks(mine, default_tasks), _trained_tasks(saved, default_tasks)
        if set(mine) != set(theirs):
            problems.append(
                f"the heads trained (model.tasks with model.active_tasks): checkpoint "
                f"{list(theirs)}, yours {list(mine)}"
            )
        else:
            problems += [
                f"model.tasks.{name}: checkpoint {theirs[name]}, yours {mine[name]}"
                for name in mine
                if mine[name] != theirs[name]
            ]
    for key in NETWORK_KEYS:
        if key == "tasks" or key not in written or key not in {*hparams, *SAVED_BEFORE}:
            continue
        saved = hparams[key] if key in hparams else SAVED_BEFORE[key]
        problems += _differences(user.get(key), _plain(saved), f"model.{key}")
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise CheckpointError(
            f"checkpoint {path} holds a different model than your config describes:\n"
            f"{listed}\nThe checkpoint's network is what runs: drop those model settings "
            "(the --config file or --model option that sets them), or pass the config the "
            "checkpoint was trained with (config.yaml in its run's log folder)."
        )
    return {k: v for k, v in hparams.items() if not (k in EVALUATION_KEYS and k in written)}


__all__ = ["EVALUATION_KEYS", "NETWORK_KEYS", "load_checkpoint", "reconcile"]
