"""The contract between a data module and the heads: every key a head reads is served."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtlscene.tasks.base import TaskHead


class DataKeyMismatchError(ValueError):
    """A head reads batch keys that the data module does not provide."""


def provided_batch_keys(datamodule: Any) -> tuple[str, ...] | None:
    """The batch keys a data module declares (``batch_keys``); None when it declares none."""
    keys = getattr(datamodule, "batch_keys", None)
    return None if keys is None else tuple(keys)


def check_heads_against_data(heads: Mapping[str, TaskHead], datamodule: Any) -> None:
    """Fail before training when a head's ``batch_keys`` are not all served by the data.

    A data module without a ``batch_keys`` declaration is not checked here; the first batch
    still is (`TaskHead.check_batch`).
    """
    check_class_counts(heads, datamodule)
    provided = provided_batch_keys(datamodule)
    if provided is None:
        return
    problems = [
        (name, [key for key in head.batch_keys if key not in provided])
        for name, head in heads.items()
    ]
    problems = [(name, missing) for name, missing in problems if missing]
    if not problems:
        return
    data_name = type(datamodule).__name__
    lines = [
        f"task {name!r} ({type(heads[name]).__name__}) reads batch keys {missing}"
        for name, missing in problems
    ]
    raise DataKeyMismatchError(
        f"{'; '.join(lines)}, which the data module {data_name} does not provide (it provides "
        f"{list(provided)}). Remove the task from model.tasks (or model.active_tasks), or "
        "use a data module that serves those targets"
    )


def check_class_counts(heads: Mapping[str, TaskHead], datamodule: Any) -> None:
    """A data module that declares ``num_classes`` must match every head reading its class
    labels: fewer logits than classes fail mid-step, more train classes never seen."""
    classes = getattr(datamodule, "num_classes", None)
    if not isinstance(classes, int):
        return
    for name, head in heads.items():
        head_classes = getattr(head, "class_names", None)
        if "semantic" in head.batch_keys and head_classes is not None:
            if len(head_classes) != classes:
                raise DataKeyMismatchError(
                    f"task {name!r} ({type(head).__name__}) predicts {len(head_classes)} "
                    f"classes, but the data module {type(datamodule).__name__} labels "
                    f"{classes}; set model.tasks.{name}.num_classes: {classes}"
                )
