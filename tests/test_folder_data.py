"""Your own data: a folder dataset read against files written by hand, its errors, its check,
and training on it through the CLI config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mtlscene.cli.data import main as data_cli
from mtlscene.data import FolderDataModule, FolderDataset
from mtlscene.data.folder.check import BAD_SPEC, check_folder_dataset
from mtlscene.data.io import DatasetFileError, MissingDatasetError
from mtlscene.data.report import INVALID_LABEL_IDS, MISSING_FILE, SIZE_MISMATCH

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
H, W = 4, 6
IGNORE = 7  # the folder's own ignore value; batches carry 255


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_spec(root: Path, **changes) -> None:
    spec = {
        "classes": ["floor", "box", "ball"],
        "ignore_index": IGNORE,
        "depth_scale": 0.001,
        "targets": {"semantic": "labels", "depth": "depth", "normal": "normals"},
        "splits": {"train": "train.txt", "val": "val.txt"},
    }
    spec.update(changes)
    spec = {key: value for key, value in spec.items() if value is not None}
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))


def labels_of(index: int) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[:, W // 2 :] = 1 + index % 2
    labels[0, 0] = IGNORE
    return labels


def image_of(index: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = np.arange(W, dtype=np.uint8) * 40  # red grows to the right
    image[..., 1] = 10 * index
    return image


@pytest.fixture
def root(tmp_path) -> Path:
    """Three train stems (PNG targets) and one val stem (.npy depth and normals)."""
    root = tmp_path / "mine"
    normal = np.zeros((H, W, 3), np.float32)
    normal[..., 0], normal[..., 2] = 0.6, 0.8  # unit, pointing right and out
    normal[1, 1] = 0.0  # no normal here
    for index, stem in enumerate(["a", "b", "c", "d"]):
        save_png(root / "images" / f"{stem}.png", image_of(index))
        save_png(root / "labels" / f"{stem}.png", labels_of(index))
        depth_mm = np.full((H, W), 1000 + 250 * index, np.uint16)
        depth_mm[2, 3] = 0  # no measurement
        if stem == "d":
            metres = depth_mm.astype(np.float32) / 1000
            metres[3, 0] = np.nan  # also no measurement
            np.save(root / "depth" / "d.npy", metres)
            np.save(root / "normals" / "d.npy", normal)
        else:
            save_png(root / "depth" / f"{stem}.png", depth_mm)
            save_png(
                root / "normals" / f"{stem}.png",
                np.round((normal + 1) / 2 * 255).astype(np.uint8) * normal.any(-1, keepdims=True),
            )
    (root / "train.txt").write_text("a\nb\n# a comment\nc\n")
    (root / "val.txt").write_text("d\n")
    write_spec(root)
    return root


def test_items_match_the_files_written_by_hand(root):
    train, val = FolderDataset(root, "train"), FolderDataset(root, "val")
    assert [s.stem for s in train.samples] == ["a", "b", "c"]
    item = train[1]
    assert item["name"] == "b"
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert torch.equal(item["image"], torch.from_numpy(image_of(1)).permute(2, 0, 1) / 255.0)
    expected = torch.from_numpy(labels_of(1).astype(np.int64))
    expected[0, 0] = 255  # the folder's ignore value 7 becomes the batch's 255
    assert torch.equal(item["semantic"], expected)
    assert item["depth"][0, 0] == pytest.approx(1.25)  # 1250 mm * depth_scale 0.001
    assert not item["depth_mask"][2, 3] and item["depth"][2, 3] == 0
    assert int(item["depth_mask"].sum()) == H * W - 1
    assert item["normal"].shape == (3, H, W)
    assert torch.allclose(item["normal"][:, 0, 0], torch.tensor([0.6, 0.0, 0.8]), atol=0.01)
    assert torch.allclose(item["normal"].norm(dim=0)[item["normal_mask"]], torch.tensor(1.0))
    assert not item["normal_mask"][1, 1] and int(item["normal_mask"].sum()) == H * W - 1

    npy = val[0]  # metres and unit vectors from .npy; NaN depth is no measurement
    assert npy["depth"][0, 0] == pytest.approx(1.75)
    assert not npy["depth_mask"][3, 0] and not npy["depth_mask"][2, 3]
    assert torch.allclose(npy["normal"][:, 0, 0], torch.tensor([0.6, 0.0, 0.8]))


def test_resize_keeps_ids_and_metres_and_flip_negates_normal_x(root):
    plain = FolderDataset(root, "train", size=(2, 3))[0]
    assert plain["image"].shape == (3, 2, 3) and plain["normal"].shape == (3, 2, 3)
    assert set(plain["semantic"].unique().tolist()) <= {0, 1, 255}  # nearest: no blends
    assert set(plain["depth"][plain["depth_mask"]].tolist()) == {1.0}

    flipped = FolderDataset(root, "train", hflip_prob=1.0)[0]
    unflipped = FolderDataset(root, "train")[0]
    assert torch.equal(flipped["image"], unflipped["image"].flip(-1))
    assert torch.equal(flipped["semantic"], unflipped["semantic"].flip(-1))
    assert torch.equal(flipped["depth_mask"], unflipped["depth_mask"].flip(-1))
    mirrored = unflipped["normal"].flip(-1)
    assert torch.equal(flipped["normal"][0], -mirrored[0])  # x points the other way
    assert torch.equal(flipped["normal"][1:], mirrored[1:])


def test_batch_keys_follow_the_yaml(root):
    assert FolderDataModule(str(root)).batch_keys == (
        "image",
        "semantic",
        "depth",
        "depth_mask",
        "normal",
        "normal_mask",
        "name",
    )
    write_spec(root, targets={"depth": "depth"}, classes=None)
    module = FolderDataModule(str(root), batch_size=2)
    assert module.batch_keys == ("image", "depth", "depth_mask", "name")
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == set(module.batch_keys)
    assert module.test_split == "val"  # no test split in the YAML


def _break(root: Path, case: str) -> tuple[type[Exception], list[str]]:
    """Break the folder one way; return the error type and what its message must name."""
    if case == "missing target":
        (root / "labels" / "b.png").unlink()
        return DatasetFileError, [str(root / "labels" / "b.png"), "train.txt"]
    if case == "size mismatch":
        save_png(root / "depth" / "a.png", np.ones((H, W + 1), np.uint16))
        return DatasetFileError, [str(root / "depth" / "a.png"), "4x7", "4x6"]
    if case == "label outside":
        labels = labels_of(0)
        labels[1, 1] = 9
        save_png(root / "labels" / "a.png", labels)
        return DatasetFileError, [str(root / "labels" / "a.png"), "[9]", "0..2", "ignore index 7"]
    if case == "unknown key":
        write_spec(root, ignore_idx=3)
        return DatasetFileError, ["dataset.yaml", "'ignore_idx'", "did you mean 'ignore_index'"]
    if case == "unknown target":
        write_spec(root, targets={"semantics": "labels"})
        return DatasetFileError, ["dataset.yaml", "'semantics'", "did you mean 'semantic'"]
    if case == "missing yaml":
        (root / "dataset.yaml").unlink()
        return MissingDatasetError, [str(root), "dataset.yaml", "own_data.md"]
    if case == "depth scale":
        write_spec(root, depth_scale=None)
        return DatasetFileError, [str(root / "depth") + "/", "depth_scale"]
    if case == "8-bit depth":
        save_png(root / "depth" / "a.png", np.ones((H, W), np.uint8))
        return DatasetFileError, [str(root / "depth" / "a.png"), "16-bit"]
    if case == "non-unit normal":
        np.save(root / "normals" / "d.npy", np.full((H, W, 3), 0.5, np.float32))
        return DatasetFileError, [str(root / "normals" / "d.npy"), "not unit vectors"]
    raise AssertionError(case)


CASES = [
    "missing target",
    "size mismatch",
    "label outside",
    "unknown key",
    "unknown target",
    "missing yaml",
    "depth scale",
    "8-bit depth",
    "non-unit normal",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_names_the_file_and_the_fix(root, case):
    error_type, named = _break(root, case)
    with pytest.raises(error_type) as caught:
        module = FolderDataModule(str(root), batch_size=8)
        module.setup("fit")
        for loader in (module.train_dataloader(), module.val_dataloader()):
            next(iter(loader))
    for text in named:
        assert text in str(caught.value)


def test_check_cli_reports_every_problem_of_a_folder(root, capsys):
    assert data_cli(["check", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Folder dataset check" in out and "3 train, 1 val" in out
    assert "no problems found" in out

    for case in ("missing target", "size mismatch", "label outside"):
        _break(root, case)
    assert data_cli(["check", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    for kind, name in (
        (MISSING_FILE, "labels/b.png"),
        (SIZE_MISMATCH, "depth/a.png"),
        (INVALID_LABEL_IDS, "labels/a.png"),
    ):
        assert kind in out and name in out

    _break(root, "unknown key")
    report = check_folder_dataset(root, progress=False)
    assert [p.kind for p in report.problems] == [BAD_SPEC]
    assert "did you mean 'ignore_index'" in report.problems[0].message


def test_example_config_trains_on_a_folder(root, tmp_path):
    """configs/own_data_example.yaml, pointed at a folder, runs a training and a val step."""
    from mtlscene.cli.main import build_cli

    cli = build_cli(
        [
            "fit",
            "--config",
            str(CONFIGS / "own_data_example.yaml"),
            "--data.init_args.root",
            str(root),
            "--data.init_args.size",
            "[32, 32]",
            "--data.init_args.batch_size",
            "2",
            "--data.init_args.num_workers",
            "0",
            "--model.backbone.init_args.aspp_channels",
            "16",
            "--model.tasks",
            "{semantic: {num_classes: 3, hidden_channels: 8}, metric_depth: {hidden_channels: 8},"
            " normal: {hidden_channels: 8}}",
            "--trainer.fast_dev_run",
            "True",
            "--trainer.default_root_dir",
            str(tmp_path / "runs"),
            "--trainer.logger",
            "False",
        ]
    )
    metrics = cli.trainer.callback_metrics
    for key in ("train/loss/semantic", "train/loss/metric_depth", "train/loss/normal"):
        assert torch.isfinite(metrics[key]), key
    assert torch.isfinite(metrics["val/metric_depth/abs_err"])


def test_a_task_without_its_target_folder_stops_at_setup(root, tmp_path):
    from lightning.pytorch import Trainer

    from mtlscene.models import DeepLabEncoder
    from mtlscene.trainers import MultiTaskModule
    from mtlscene.trainers.data_keys import DataKeyMismatchError

    write_spec(root, targets={"semantic": "labels", "depth": "depth"})  # no normals
    head = {"hidden_channels": 8, "num_layers": 1}
    model = MultiTaskModule(
        backbone=DeepLabEncoder("resnet18", output_stride=16, aspp_channels=8),
        tasks={"semantic": {"num_classes": 3, **head}, "normal": head},
    )
    trainer = Trainer(
        fast_dev_run=True, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    with pytest.raises(DataKeyMismatchError) as caught:
        trainer.fit(model, datamodule=FolderDataModule(str(root), batch_size=2))
    message = str(caught.value)
    assert "'normal'" in message and "FolderDataModule" in message and "normal_mask" in message
