"""Selection apart from reporting: refuse an experiment that would select on what it reports.

Whatever an experiment picks by a score must score on images its reported numbers never
see. Three things select here:

- a weight **search** (``search.py``): every trial is scored on the validation split;
- a **grouping** stage (``grouping_experiment.py``): the groupings it trains are compared
  on the validation split, and the one chosen there is the one reported;
- **early stopping**: a row whose trainer callbacks include an ``EarlyStopping`` stops on a
  validation score.

Each is checked before anything runs: the selecting runs' ``val`` images (what the data
module's ``validate`` reads) against the reported runs' ``test`` images, by the resolved
file lists the data modules give (``split_files``), or by folder where the files do not
exist yet. On real CityScapes ``test`` evaluates ``val``, and NYUv2's validation split is
its test images, so there a selecting experiment needs ``data.val_from_train``: a
selection split carved from train (`mtlscene.data.holdout`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlscene.data.split_files import shared_images
from mtlscene.experiments.definition import Experiment, Row

FIX = (
    "set data.val_from_train (e.g. --override data.init_args.val_from_train=0.2) so that "
    "selection scores on images carved from train"
)
EARLY_STOPPING = "EarlyStopping"


class SelectionError(ValueError):
    """An experiment would select on images it reports (the message names both)."""


@dataclass(frozen=True)
class Selection:
    """Something an experiment chooses by a score, and what it then reports.

    Attributes:
        what: what selects, for the message (``search``, ``grouping``, ``early stopping
            in row 'X'``).
        selects: the ``fit`` arguments of a run whose validation scores select.
        reports: the ``fit`` arguments of each run whose test scores are reported.
    """

    what: str
    selects: tuple[str, ...]
    reports: tuple[tuple[str, ...], ...]


def row_args(experiment: Experiment, row: Row, extra_args: Sequence[str]) -> tuple[str, ...]:
    """A row's configuration (no seed, folder or logger: they do not change the data)."""
    return tuple(experiment.base_args() + row.config_args() + list(extra_args))


def data_module(args: Sequence[str]) -> Any | None:
    """The data module the arguments configure, built without touching its files; None
    where the arguments do not parse (the run itself then says why)."""
    # Here, not at the top: the training CLI loads Lightning and the datasets.
    from mtlscene.cli.main import parse_config

    try:
        config = parse_config(list(args))
    except (SystemExit, Exception):  # the run reports its own configuration errors
        return None
    data = config.get("data")
    class_path = getattr(data, "class_path", None)
    if class_path is None:
        return None
    module, _, name = class_path.rpartition(".")
    init = getattr(data, "init_args", None)
    kwargs = init.as_dict() if hasattr(init, "as_dict") else dict(init or {})
    try:
        return getattr(importlib.import_module(module), name)(**kwargs)
    except Exception:  # a missing root or a bad value: the run says so itself
        return None


def _split_files(module: Any, role: str) -> Any | None:
    """``module.split_files(role)``, or None for a data module of its own (its roles cannot
    be compared) or one whose split cannot be read (the run itself says why)."""
    if not hasattr(module, "split_files"):
        return None
    try:
        return module.split_files(role)
    except Exception:
        return None


def leak(selection: Selection, modules: dict | None = None) -> str | None:
    """The one-line refusal of ``selection`` when it selects on a report's images, else None.

    ``modules`` caches data modules by arguments (several selections share them).
    """
    modules = {} if modules is None else modules

    def module(args: tuple[str, ...]):
        if args not in modules:
            modules[args] = data_module(args)
        return modules[args]

    selected = _split_files(module(selection.selects), "val")
    if selected is None:
        return None
    for args in selection.reports:
        reported = _split_files(module(args), "test")
        why = None if reported is None else shared_images(selected, reported)
        if why is not None:
            return f"{selection.what} selects on {selected} and reports on {reported}: {why}; {FIX}"
    return None


def check(selections: Sequence[Selection]) -> None:
    """Raise `SelectionError` with the first selection that leaks."""
    modules: dict = {}
    for selection in selections:
        message = leak(selection, modules)
        if message is not None:
            raise SelectionError(message)


def search_selection(experiment: Experiment, searched: Row, extra_args: Sequence[str]) -> Selection:
    """A weight search: trials like ``searched`` select, every row of the comparison reports."""
    reports = tuple(dict.fromkeys(row_args(experiment, r, extra_args) for r in experiment.rows))
    return Selection("search", row_args(experiment, searched, extra_args), reports)


def _names_early_stopping(experiment: Experiment, row: Row, extra_args: Sequence[str]) -> bool:
    # A look at the text first: resolving every row's configuration costs a parse each.
    args = row_args(experiment, row, extra_args)
    texts = [arg for arg in args if not arg.startswith("--config")]
    for index, arg in enumerate(args[:-1]):
        if arg == "--config" and Path(args[index + 1]).is_file():
            texts.append(Path(args[index + 1]).read_text(encoding="utf-8"))
    return any(EARLY_STOPPING in text for text in texts)


def stops_early(args: Sequence[str]) -> bool:
    """Whether the resolved configuration has an early-stopping callback."""
    # Here, not at the top: the training CLI loads Lightning and the datasets.
    from mtlscene.cli.main import parse_config

    try:
        callbacks = parse_config(list(args)).trainer.callbacks or []
    except (SystemExit, Exception):
        return False
    return any(EARLY_STOPPING in str(getattr(c, "class_path", c)) for c in callbacks)


def experiment_selections(experiment: Experiment, extra_args: Sequence[str]) -> list[Selection]:
    """What an experiment run by ``mtlscene-experiment run`` selects by a score."""
    selections = []
    if experiment.grouping is not None:
        measured = next(r for r in experiment.rows if r.name == experiment.grouping.measured_row)
        reports = tuple(dict.fromkeys(row_args(experiment, r, extra_args) for r in experiment.rows))
        selections.append(
            Selection("grouping", row_args(experiment, measured, extra_args), reports)
        )
    for row in experiment.rows:
        if _names_early_stopping(experiment, row, extra_args):
            args = row_args(experiment, row, extra_args)
            if stops_early(args):
                selections.append(Selection(f"early stopping in row {row.name!r}", args, (args,)))
    return selections


def check_experiment(experiment: Experiment, extra_args: Sequence[str]) -> None:
    """Refuse (`SelectionError`) an experiment that selects on images it reports."""
    check(experiment_selections(experiment, extra_args))
