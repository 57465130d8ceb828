"""Which split `test` scores, refusing all-void labels, and the training crop size."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from handmade import HEIGHT, WIDTH, write_frame
from PIL import Image

from mtlscene.cli.main import main
from mtlscene.data import CityscapesDataModule
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.io import DatasetFileError

CONF = Path(__file__).parent / "conf"
CONFIGS = Path(__file__).parents[1] / "configs"


def _void_labels(root: Path, split: str) -> None:
    """Overwrite a split's labels with placeholders, like CityScapes' withheld test labels."""
    for path in (root / "gtFine" / split).glob("*/*_gtFine_*Ids.png"):
        shape = np.array(Image.open(path)).shape
        Image.fromarray(np.zeros(shape, np.uint8)).save(path)


def test_test_split_defaults_to_val_on_cityscapes_and_test_on_synthetic(tmp_path):
    real = write_frame(tmp_path / "cs", "val")
    assert CityscapesDataModule(real).test_split == "val"
    assert CityscapesDataModule(real, test_split="test").test_split == "test"
    generated = synthetic.generate_dataset(tmp_path / "syn", {"val": 1, "test": 1}, 16, 32)
    assert CityscapesDataModule(generated).test_split == "test"


def test_test_stage_evaluates_val_on_a_cityscapes_root(tmp_path):
    root = write_frame(write_frame(tmp_path / "cs", "val"), "test")
    _void_labels(root, "test")
    module = CityscapesDataModule(root, size=(HEIGHT, WIDTH), num_workers=0)
    module.setup("test")
    assert module.test_dataloader().dataset.split == "val"


def test_all_void_labels_stop_evaluation_with_a_clear_error(tmp_path):
    root = write_frame(write_frame(tmp_path / "cs", "val"), "test")
    _void_labels(root, "test")
    module = CityscapesDataModule(root, size=(HEIGHT, WIDTH), num_workers=0, test_split="test")
    with pytest.raises(DatasetFileError, match="split 'test'.*void") as error:
        module.setup("test")
    assert "--data.test_split val" in str(error.value)
    module.setup("validate")  # the labelled split is fine


def test_cli_test_refuses_placeholder_labels(tmp_path, capsys):
    root = synthetic.generate_dataset(tmp_path / "syn", {"train": 4, "val": 2, "test": 2}, 32, 64)
    _void_labels(root, "test")
    args = ["test", "--config", str(CONF / "tiny.yaml"), "--data.root", str(root)]
    with pytest.raises(SystemExit) as exit_info:  # a user error: one message, no traceback
        main(args)
    assert exit_info.value.code == 2
    assert "is void at 32x64" in capsys.readouterr().err


def test_crop_size_crops_training_samples_only(tmp_path):
    root = synthetic.generate_dataset(tmp_path / "syn", {"train": 1, "val": 1}, 32, 64)
    module = CityscapesDataModule(root, size=(32, 64), crop_size=(16, 24), num_workers=0)
    module.setup("fit")
    assert module.dataset("train", train=True)[(0, 1)]["semantic"].shape == (16, 24)
    assert module.dataset("val")[0]["semantic"].shape == (32, 64)
    plain = CityscapesDataModule(root, size=(32, 64), num_workers=0)
    assert plain.dataset("train", train=True)[(0, 1)]["semantic"].shape == (32, 64)


def test_full_resolution_preset_sets_a_crop(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "cityscapes_tiny.yaml"),
                "--config",
                str(CONFIGS / "cityscapes.yaml"),
                "--print_config",
            ]
        )
    data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert data["size"] == [1024, 2048]
    assert data["crop_size"] == [512, 1024]
