"""CityScapes data: label table, target encoding, dataset, data module, synthetic data.

Imports are lazy so that light tools (``mtlscene-data``) do not pay for Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CityscapesDataModule": "mtlscene.data.datamodule",
    "CityscapesMultiTask": "mtlscene.data.dataset",
    "DatasetFileError": "mtlscene.data.io",
    "FolderDataModule": "mtlscene.data.folder_datamodule",
    "FolderDataset": "mtlscene.data.folder_dataset",
    "MissingDatasetError": "mtlscene.data.io",
    "NYUv2DataModule": "mtlscene.data.nyuv2_datamodule",
    "NYUv2Dataset": "mtlscene.data.nyuv2_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mtlscene.data' has no attribute {name!r}")
