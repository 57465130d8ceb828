"""The datasets ``mtlscene-data check`` knows, by name, and which one a root holds."""

from __future__ import annotations

from pathlib import Path

from mtlscene.data.cityscapes.checker import CityscapesChecker
from mtlscene.data.folder.check import FolderChecker
from mtlscene.data.nyuv2.check import NYUv2Checker
from mtlscene.data.report import DatasetChecker

CHECKERS: dict[str, type[DatasetChecker]] = {
    checker.name: checker for checker in (FolderChecker, NYUv2Checker, CityscapesChecker)
}
"""Name -> checker, in the order roots are matched (the most specific layout first)."""

DEFAULT = CityscapesChecker.name
"""The dataset a root that matches none is checked as (its report says what is missing)."""


def checker_for(root: str | Path, name: str | None = None) -> DatasetChecker:
    """The checker of a root: the named dataset's, else the first whose ``detect`` matches.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    root = Path(root)
    if name is None:
        name = next((n for n, checker in CHECKERS.items() if checker.detect(root)), DEFAULT)
    if name not in CHECKERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(CHECKERS)}")
    return CHECKERS[name](root)
