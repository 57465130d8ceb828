"""Data modules as plugins: chosen by class_path, checked against the heads at setup."""

from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader

from mtlscene.cli.main import build_cli, main
from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.data_keys import DataKeyMismatchError
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.weighting import UncertaintyWeighting

CONF = Path(__file__).parent / "conf"
TINY = str(CONF / "tiny.yaml")
CONFIGS = Path(__file__).parents[1] / "configs"


class SemanticOnlyData(LightningDataModule):
    """Serves images and class labels only: no disparity target."""

    batch_keys = ("image", "semantic")

    def __init__(self):
        super().__init__()
        self.setup_stages: list[str] = []

    def setup(self, stage: str) -> None:
        self.setup_stages.append(stage)

    def _loader(self):
        items = [
            {"image": torch.rand(3, 32, 64), "semantic": torch.zeros(32, 64, dtype=torch.long)}
            for _ in range(2)
        ]
        return DataLoader(items, batch_size=2)

    train_dataloader = val_dataloader = test_dataloader = _loader


def _one_step_trainer(root, validate: bool = True) -> Trainer:
    return Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=None if validate else 0,
    )


def _model(tasks):
    backbone = DeepLabEncoder(name="resnet18", output_stride=16, aspp_channels=8)
    return MultiTaskModule(backbone=backbone, tasks=tasks, weighting=UncertaintyWeighting())


def test_a_head_whose_keys_the_data_lacks_fails_at_setup_naming_both(tmp_path):
    data = SemanticOnlyData()
    model = _model({"semantic": {"hidden_channels": 8}, "depth": {"hidden_channels": 8}})
    before = [p.detach().clone() for p in model.parameters()]
    trainer = _one_step_trainer(tmp_path)
    with pytest.raises(DataKeyMismatchError) as error:
        trainer.fit(model, datamodule=data)
    message = str(error.value)
    assert "'depth'" in message and "DepthHead" in message
    assert "disparity" in message and "disparity_mask" in message
    assert "SemanticOnlyData" in message
    assert "model.tasks" in message  # says what to change
    assert data.setup_stages == ["fit"] and trainer.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_heads_the_data_serves_train(tmp_path):
    trainer = _one_step_trainer(tmp_path, validate=False)
    trainer.fit(_model({"semantic": {"hidden_channels": 8}}), datamodule=SemanticOnlyData())
    assert trainer.global_step == 1


def test_shipped_full_configs_name_their_data_class():
    for name in ("quickstart.yaml", "cityscapes_tiny.yaml", "cityscapes.yaml"):
        config = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
        assert config["data"]["class_path"] == "mtlscene.data.CityscapesDataModule", name


def test_a_config_without_class_path_keeps_the_cityscapes_module(capsys):
    # tests/conf/tiny.yaml is written the old way: `data:` holds plain arguments.
    assert "class_path" not in yaml.safe_load(Path(TINY).read_text())["data"]
    cli = build_cli(["--config", TINY], run=False)
    assert type(cli.datamodule).__name__ == "CityscapesDataModule"
    assert cli.datamodule.size == (32, 64)


def test_data_class_path_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                TINY,
                "--data",
                "mtlscene.data.CityscapesDataModule",
                "--data.batch_size",
                "3",
                "--print_config",
            ]
        )
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["class_path"] == "mtlscene.data.CityscapesDataModule"
    assert data["init_args"]["batch_size"] == 3
    assert data["init_args"]["size"] == [32, 64]  # the config's arguments are kept


class FiveClassData(SemanticOnlyData):
    num_classes = 5


def test_a_class_count_mismatch_fails_at_setup_naming_the_fix(tmp_path):
    trainer = _one_step_trainer(tmp_path)
    model = _model({"semantic": {"hidden_channels": 8}})  # 19 CityScapes trainIds
    with pytest.raises(
        DataKeyMismatchError, match=r"predicts 19 classes.*labels 5.*num_classes: 5"
    ):
        trainer.fit(model, datamodule=FiveClassData())
    assert trainer.global_step == 0
    matching = _model({"semantic": {"hidden_channels": 8, "num_classes": 5}})
    trainer = _one_step_trainer(tmp_path, validate=False)
    trainer.fit(matching, datamodule=FiveClassData())
    assert trainer.global_step == 1
