"""Old module paths, from before the files moved into rooms by concept, still import.

Checkpoints and configs name their classes by module path (``class_path``, and Lightning's
saved hyperparameters). Those written before ``data/``, ``viz/``, ``cli/`` and
``uncertainty/`` were laid out by concept name modules that are now elsewhere; importing an
old name gives the module at its new place, so such a checkpoint or config still loads.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "mtlscene.checkpoint_config": "mtlscene.cli.checkpoint_config",
    "mtlscene.cli_errors": "mtlscene.cli.errors",
    "mtlscene.config_check": "mtlscene.cli.config_check",
    "mtlscene.data.cli": "mtlscene.cli.data",
    "mtlscene.data.augment_draw": "mtlscene.data.cityscapes.augment_draw",
    "mtlscene.data.cache": "mtlscene.data.cityscapes.cache",
    "mtlscene.data.check": "mtlscene.data.cityscapes.check",
    "mtlscene.data.datamodule": "mtlscene.data.cityscapes.datamodule",
    "mtlscene.data.dataset": "mtlscene.data.cityscapes.dataset",
    "mtlscene.data.device_augment": "mtlscene.data.cityscapes.device_augment",
    "mtlscene.data.encoding": "mtlscene.data.cityscapes.encoding",
    "mtlscene.data.folder_check": "mtlscene.data.folder.check",
    "mtlscene.data.folder_datamodule": "mtlscene.data.folder.datamodule",
    "mtlscene.data.folder_dataset": "mtlscene.data.folder.dataset",
    "mtlscene.data.folder_files": "mtlscene.data.folder.files",
    "mtlscene.data.folder_spec": "mtlscene.data.folder.spec",
    "mtlscene.data.frame": "mtlscene.data.cityscapes.frame",
    "mtlscene.data.labels": "mtlscene.data.cityscapes.labels",
    "mtlscene.data.layout": "mtlscene.data.cityscapes.layout",
    "mtlscene.data.nyuv2_check": "mtlscene.data.nyuv2.check",
    "mtlscene.data.nyuv2_datamodule": "mtlscene.data.nyuv2.datamodule",
    "mtlscene.data.nyuv2_dataset": "mtlscene.data.nyuv2.dataset",
    "mtlscene.data.nyuv2_layout": "mtlscene.data.nyuv2.layout",
    "mtlscene.data.nyuv2_transforms": "mtlscene.data.nyuv2.transforms",
    "mtlscene.data.preflight": "mtlscene.data.cityscapes.preflight",
    "mtlscene.data.synthetic": "mtlscene.data.cityscapes.synthetic",
    "mtlscene.data.synthetic_indoor": "mtlscene.data.nyuv2.synthetic",
    "mtlscene.data.transforms": "mtlscene.data.cityscapes.transforms",
    "mtlscene.main": "mtlscene.cli.main",
    "mtlscene.outputs": "mtlscene.cli.outputs",
    "mtlscene.panels": "mtlscene.viz.panels",
    "mtlscene.plots": "mtlscene.viz.weight_history",
    "mtlscene.quiet": "mtlscene.cli.quiet",
    "mtlscene.tasks.aleatoric": "mtlscene.uncertainty.aleatoric",
    "mtlscene.uncertainty_plots": "mtlscene.viz.calibration",
    "mtlscene.visualize": "mtlscene.viz.colorize",
}
"""Old dotted module path -> where the module lives now (packages move with their children)."""


def new_name(old: str) -> str | None:
    """The current path of a module named by its old path, or None when it did not move."""
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before) :]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias' spec on the real module: give it its own back.
        module.__spec__ = self.spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        target_name = new_name(fullname) if fullname.startswith("mtlscene.") else None
        if target_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(target_name))


def install() -> None:
    """Let old module paths import (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        # First: the path finder would otherwise load a moved package's child a second time,
        # under its old name, through the package's ``__path__``.
        sys.meta_path.insert(0, _MovedModuleFinder())
