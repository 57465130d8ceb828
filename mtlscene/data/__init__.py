"""CityScapes data: label table, target encoding, dataset, data module, synthetic data."""

from mtlscene.data.datamodule import CityscapesDataModule
from mtlscene.data.dataset import CityscapesMultiTask
from mtlscene.data.io import DatasetFileError

__all__ = ["CityscapesDataModule", "CityscapesMultiTask", "DatasetFileError"]
