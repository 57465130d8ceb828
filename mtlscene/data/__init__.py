"""Datasets, one folder each (``cityscapes/``, ``nyuv2/``, ``folder/``), and what they share:
reading files, loaders, resumable sampling, sizes, resizing, the check report and the checkers by
name.

Imports are lazy so that light tools (``mtlscene-data``) do not pay for Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CityscapesDataModule": "mtlscene.data.cityscapes.datamodule",
    "CityscapesMultiTask": "mtlscene.data.cityscapes.dataset",
    "DatasetFileError": "mtlscene.data.io",
    "FolderDataModule": "mtlscene.data.folder.datamodule",
    "FolderDataset": "mtlscene.data.folder.dataset",
    "MissingDatasetError": "mtlscene.data.io",
    "NYUv2DataModule": "mtlscene.data.nyuv2.datamodule",
    "NYUv2Dataset": "mtlscene.data.nyuv2.dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mtlscene.data' has no attribute {name!r}")
