"""Module paths from before the files moved (``data/``, ``viz/``, ``cli/``) still import, and a
checkpoint written before the move still loads its data module and model."""

import importlib
import warnings
from pathlib import Path

import pytest
import torch
from lightning import LightningDataModule

from mtlscene.data.cityscapes.datamodule import CityscapesDataModule
from mtlscene.moved_modules import MOVED, new_name
from mtlscene.trainers import MultiTaskModule

# Written by `mtlscene fit --config tests/conf/tiny.yaml --data.class_path
# mtlscene.data.datamodule.CityscapesDataModule` at 9ffe99a, before the move; its weights and
# optimizer state were dropped to keep the file small (its `written_by` says so).
BEFORE_THE_MOVE = Path(__file__).parent / "data" / "checkpoint_before_the_move.ckpt"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_module_path_imports_the_module_at_its_new_place(old):
    module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    # The real module keeps its own name and spec (pickles and reloads name the new place).
    assert module.__spec__.name == MOVED[old] == module.__name__


def test_children_of_moved_packages_follow_them():
    writer = importlib.import_module("mtlscene.data.synthetic.writer")
    assert writer is importlib.import_module("mtlscene.data.cityscapes.synthetic.writer")
    assert new_name("mtlscene.data.synthetic_indoor.room") == "mtlscene.data.nyuv2.synthetic.room"
    assert new_name("mtlscene.data.io") is None  # shared modules did not move


def test_a_checkpoint_written_before_the_move_loads(tmp_path):
    saved = torch.load(BEFORE_THE_MOVE, weights_only=True)
    old_path = "mtlscene.data.datamodule.CityscapesDataModule"
    assert saved["datamodule_hyper_parameters"]["_class_path"] == old_path
    # Give it the weights of a model built from its own hyperparameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = MultiTaskModule.load_from_checkpoint(BEFORE_THE_MOVE, strict=False)
    saved["state_dict"] = built.state_dict()
    path = tmp_path / "before_the_move.ckpt"
    torch.save(saved, path)

    data = LightningDataModule.load_from_checkpoint(path, weights_only=True)
    assert type(data) is CityscapesDataModule
    assert list(data.hparams.size) == [32, 64] and data.hparams.batch_size == 2
    model = MultiTaskModule.load_from_checkpoint(path, weights_only=True)
    assert sorted(model.network.heads) == ["depth", "instance", "semantic"]
    image = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    built.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(image), built(image), rtol=0, atol=0)
