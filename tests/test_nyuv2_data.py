"""NYUv2 (mtan layout): loader against hand-written files, file checks, augmentation,
held-out validation, the synthetic indoor generator and ``mtlscene-data check``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlscene.cli.data import main as data_cli
from mtlscene.data import DatasetFileError, NYUv2DataModule, NYUv2Dataset
from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.data.nyuv2.synthetic import (
    IndoorCamera,
    Room,
    ensure_dataset,
    generate_dataset,
    render,
)
from mtlscene.data.nyuv2.synthetic.room import CEILING, FLOOR, WALL
from mtlscene.data.nyuv2.transforms import ScaleCrop, ScaleCropFlip

H, W = 6, 6


def frame(index: int = 0) -> dict[str, np.ndarray]:
    """One hand-made frame: every value predictable."""
    rows, cols = np.mgrid[:H, :W]
    image = np.stack([rows / H, cols / W, np.full((H, W), 0.5)], axis=-1)
    label = ((rows + cols + index) % 13).astype(np.float64)
    label[0, 0] = -1
    depth = (1.0 + rows * 10 + cols).astype(np.float32)[..., None]  # HxWx1, as mtan stores it
    depth[1, 1] = 0  # no Kinect reading
    normal = np.zeros((H, W, 3), np.float32)
    normal[..., 0], normal[..., 2] = 0.6, 0.8
    normal[:, :3, 0] = 1.0  # left half (1, 0, 0)
    normal[:, :3, 2] = 0.0
    normal[2, 2] = 0  # invalid normal
    return {"image": image, "label": label, "depth": depth, "normal": normal}


def write_root(root: Path, counts=(("train", 4), ("val", 2))) -> Path:
    for split, count in counts:
        for index in range(count):
            for folder, array in frame(index).items():
                if folder == "depth" and index % 2:
                    array = array[..., 0]  # mtan's HxWx1, and plain HxW, are both read
                path = root / split / folder / f"{index}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, array)
    return root


def test_loader_reads_the_mtan_files(tmp_path: Path) -> None:
    item = NYUv2Dataset(write_root(tmp_path), "train")[1]
    source = frame(1)
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"], torch.from_numpy(source["image"]).permute(2, 0, 1).float())
    assert item["semantic"].dtype == torch.long
    assert item["semantic"][0, 0] == IGNORE_INDEX  # the files' -1
    assert item["semantic"][2, 3] == (2 + 3 + 1) % 13
    assert item["depth"].shape == (H, W) and item["depth"][3, 4] == 35.0
    assert not item["depth_mask"][1, 1] and item["depth_mask"].sum() == H * W - 1
    assert item["normal"].shape == (3, H, W)
    assert item["normal"][:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert not item["normal_mask"][2, 2] and item["normal_mask"].sum() == H * W - 1
    assert (item["normal"][:, 2, 2] == 0).all()
    assert item["name"] == "1"


def test_an_interrupted_epoch_resumes_with_the_same_batches(tmp_path: Path) -> None:
    root = str(write_root(tmp_path, (("train", 6), ("val", 1))))

    def loader():
        module = NYUv2DataModule(root, batch_size=2, num_workers=0, seed=5)
        module.setup("fit")
        return module.train_dataloader()

    full = loader()
    full.sampler.set_epoch(3)
    batches = list(full)
    resumed = loader()
    resumed.load_state_dict({"epoch": 3, "batches_consumed": 1})
    rest = list(resumed)
    assert [b["name"] for b in rest] == [b["name"] for b in batches[1:]]
    for got, want in zip(rest, batches[1:], strict=True):
        assert torch.equal(got["depth"], want["depth"]) and torch.equal(got["image"], want["image"])


def test_working_size_resizes_without_changing_metric_depth(tmp_path: Path) -> None:
    item = NYUv2Dataset(write_root(tmp_path), "train", size=(3, 3))[0]
    assert item["image"].shape == (3, 3, 3) and item["semantic"].shape == (3, 3)
    # Nearest neighbour at pixel centres: output (r, c) reads input (2r + 1, 2c + 1).
    assert item["depth"][1, 2] == 1 + 3 * 10 + 5
    assert item["semantic"][2, 0] == (5 + 1) % 13


def test_flip_negates_normal_x_exactly(tmp_path: Path) -> None:
    sample = NYUv2Dataset(write_root(tmp_path), "train").load(0)
    flipped = ScaleCropFlip()(sample, ScaleCrop(scale=1.0, top=0, left=0, flip=True))
    mirrored = torch.flip(sample["normal"], dims=[-1])
    assert torch.equal(flipped["normal"][0], -mirrored[0])
    assert torch.equal(flipped["normal"][1:], mirrored[1:])
    assert torch.equal(flipped["depth"], torch.flip(sample["depth"], dims=[-1]))
    assert torch.equal(flipped["semantic"], torch.flip(sample["semantic"], dims=[-1]))


def test_scale_crop_divides_depth_by_the_scale(tmp_path: Path) -> None:
    sample = NYUv2Dataset(write_root(tmp_path), "train").load(0)
    out = ScaleCropFlip()(sample, ScaleCrop(scale=1.5, top=1, left=2, flip=False))
    # A 4x4 crop at (1, 2) resized to 6x6 by nearest: output i reads crop floor(i * 4 / 6).
    src = [int(i * 4 / 6) for i in range(6)]
    rows, cols = [1 + s for s in src], [2 + s for s in src]
    expected = sample["depth"][rows][:, cols] / 1.5
    assert torch.equal(out["depth"], expected)
    assert out["depth"][0, 0] == pytest.approx((1 + 1 * 10 + 2) / 1.5)
    assert torch.equal(out["semantic"], sample["semantic"][rows][:, cols])
    assert torch.equal(out["normal"], sample["normal"][:, rows][:, :, cols])
    assert torch.equal(out["depth_mask"], sample["depth_mask"][rows][:, cols])
    assert out["image"].shape == (3, H, W)


def test_augmentation_is_a_function_of_the_sampler_seed(tmp_path: Path) -> None:
    dataset = NYUv2Dataset(write_root(tmp_path), "train", augmentation=ScaleCropFlip())
    first, again = dataset[(0, 123)], dataset[(0, 123)]
    assert all(torch.equal(first[k], again[k]) for k in ("image", "depth", "normal"))
    others = [dataset[(0, seed)]["depth"] for seed in range(8)]
    assert any(not torch.equal(first["depth"], other) for other in others)
    # Whatever was drawn, valid depths are the source's divided by one of the scales.
    source = set(np.unique(frame(0)["depth"]).tolist())
    for other in others:
        values = other[other > 0].unique().tolist()
        assert any(all(round(v * s, 3) in source for v in values) for s in (1.0, 1.2, 1.5))


def _break(root: Path, split: str, folder: str, index: int, change) -> Path:
    path = root / split / folder / f"{index}.npy"
    result = change(np.load(path))
    if result is None:
        path.unlink()
    else:
        np.save(path, result)
    return path


def _set(array: np.ndarray, where, value) -> np.ndarray:
    array = array.copy()
    array[where] = value
    return array


BAD_FILES = {
    "wrong shape": ("label", lambda a: a[:5], "wrong shape"),
    "NaN image": ("image", lambda a: _set(a, (2, 2, 0), np.nan), "NaN"),
    "inf depth": ("depth", lambda a: _set(a, (2, 2, 0), np.inf), "NaN or inf"),
    "non-unit normal": ("normal", lambda a: _set(a, (3, 3), [0.0, 0.0, 0.99]), "non-unit"),
    "label 13": ("label", lambda a: _set(a, (1, 1), 13), "invalid labels"),
    "label -2": ("label", lambda a: _set(a, (1, 1), -2), "invalid labels"),
    "fractional label": ("label", lambda a: _set(a, (1, 1), 2.5), "invalid labels"),
    "file missing in one folder": ("normal", lambda a: None, "normal file missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_named_with_the_problem(tmp_path: Path, case: str) -> None:
    folder, change, words = BAD_FILES[case]
    root = write_root(tmp_path)
    path = _break(root, "train", folder, 2, change)
    with pytest.raises(DatasetFileError) as error:
        NYUv2Dataset(root, "train")
    assert str(path) in str(error.value) and words in str(error.value)


def test_a_gap_in_the_numbering_is_named(tmp_path: Path) -> None:
    root = write_root(tmp_path)
    for folder in ("image", "label", "depth", "normal"):
        (root / "train" / folder / "1.npy").unlink()
    with pytest.raises(DatasetFileError, match=r"train/image/1\.npy: missing index.*0\.\.N-1"):
        NYUv2Dataset(root, "train")


def test_held_out_validation_is_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_root(tmp_path, (("train", 10), ("val", 3)))

    def split(seed: int):
        module = NYUv2DataModule(str(root), num_workers=0, val_from_train=3, split_seed=seed)
        module.setup("fit")
        module.setup("test")
        return module

    module = split(0)
    training, validation = module.held_out()
    assert len(validation) == 3 and not set(training) & set(validation)
    assert sorted(training + validation) == list(range(10))
    assert [module.dataset("val")[i]["name"] for i in range(3)] == [str(i) for i in validation]
    assert len(module.dataset("train")) == 7
    assert module.dataset("test").split == "val" and len(module.dataset("test")) == 3
    assert split(0).held_out() == (training, validation)
    assert any(split(seed).held_out()[1] != validation for seed in (1, 2, 3))
    standard = NYUv2DataModule(str(root), num_workers=0)
    standard.setup("fit")
    assert standard.dataset("val").split == "val" and len(standard.dataset("train")) == 10


def test_batches_carry_the_declared_keys(tmp_path: Path) -> None:
    module = NYUv2DataModule(str(write_root(tmp_path)), batch_size=2, num_workers=0)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {*NYUv2DataModule.batch_keys, "name"}
    assert batch["normal"].shape == (2, 3, H, W)


def test_a_camera_looking_down_at_the_floor_sees_exact_depth_and_normal() -> None:
    height, pitch = 1.5, -0.4
    camera = IndoorCamera.looking(9, 11, (4.0, height, 3.0), yaw=0.3, pitch=pitch)
    scene = render(Room(size=(8.0, 2.6, 9.0)), camera)
    # The centre pixel looks along the optical axis.
    assert scene.label[4, 5] == FLOOR
    assert scene.depth[4, 5] == pytest.approx(height / math.sin(-pitch), rel=1e-5)
    assert scene.normal[4, 5] == pytest.approx([0.0, -math.cos(pitch), math.sin(pitch)], abs=1e-6)
    # Every floor pixel: camera height = depth * (up component of its camera-z=1 ray).
    up_of_ray = -camera.ray_directions()[:, 1].reshape(9, 11)
    floor = scene.label == FLOOR
    assert np.allclose(scene.depth[floor] * up_of_ray[floor], height, rtol=1e-5)
    assert set(np.unique(scene.label)) <= {FLOOR, WALL, CEILING}
    lengths = np.linalg.norm(scene.normal, axis=-1)
    assert np.allclose(lengths, 1, atol=1e-6)
    # Normals face the camera.
    rays = camera.to_camera(camera.ray_directions()).reshape(9, 11, 3)
    assert ((scene.normal * rays).sum(-1) < 0).all()


def test_generator_writes_a_valid_mtan_root(tmp_path: Path) -> None:
    splits = {"train": 3, "val": 2}
    root = generate_dataset(tmp_path / "nyu", splits, 24, 32, seed=0, progress=False)
    assert json.loads((root / "SYNTHETIC_NYUV2.json").read_text())["complete"]
    for split, count in splits.items():
        assert sorted(p.name for p in (root / split / "depth").iterdir()) == [
            f"{i}.npy" for i in range(count)
        ]
    assert np.load(root / "train/depth/0.npy").shape == (24, 32, 1)
    labels = np.concatenate([np.load(p).ravel() for p in root.glob("*/label/*.npy")])
    assert labels.min() == -1 and 11 in labels  # unlabelled outlines, walls
    normal, depth = np.load(root / "train/normal/1.npy"), np.load(root / "train/depth/1.npy")
    assert np.array_equal(np.linalg.norm(normal, axis=-1) > 0, depth[..., 0] > 0)
    assert data_cli(["check", str(root), "--no-progress"]) == 0
    again = generate_dataset(tmp_path / "again", splits, 24, 32, seed=0, progress=False)
    assert np.array_equal(np.load(again / "val/image/1.npy"), np.load(root / "val/image/1.npy"))


def test_ensure_dataset_reuses_a_complete_root_and_refuses_real_data(tmp_path: Path) -> None:
    root = ensure_dataset(tmp_path / "nyu", {"train": 1, "val": 1}, 8, 8, progress=False)
    stamp = (root / "train/image/0.npy").stat().st_mtime_ns
    ensure_dataset(root, {"train": 1, "val": 1}, 8, 8, progress=False)
    assert (root / "train/image/0.npy").stat().st_mtime_ns == stamp
    real = write_root(tmp_path / "real")
    with pytest.raises(FileExistsError, match="looks like real data"):
        generate_dataset(real, {"train": 1, "val": 1}, 8, 8, progress=False)


def test_data_check_lists_every_bad_file(tmp_path: Path, capsys) -> None:
    root = write_root(tmp_path / "nyu")
    assert data_cli(["check", str(root), "--no-progress"]) == 0
    assert "NYUv2 check" in capsys.readouterr().out
    _break(root, "val", "label", 1, lambda a: _set(a, (0, 1), 20))
    _break(root, "train", "normal", 0, lambda a: a * 2)
    assert data_cli(["check", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "val/label/1.npy" in out and "train/normal/0.npy" in out and "non-unit" in out


def test_the_nyuv2_quickstart_config_trains_the_three_heads(tmp_path: Path) -> None:
    from mtlscene.cli.main import build_cli

    config = Path(__file__).parents[1] / "configs" / "nyuv2_quickstart.yaml"
    cli = build_cli(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run",
            "1",
            "--data.root",
            str(tmp_path / "nyu"),
            "--data.synthetic_images",
            "{train: 2, val: 2}",
            "--data.synthetic_resolution",
            "[32, 48]",
            "--data.batch_size",
            "2",
            "--data.num_workers",
            "0",
        ]
    )
    assert type(cli.datamodule) is NYUv2DataModule and cli.trainer.global_step == 1
    logged = cli.trainer.callback_metrics
    assert {"val/normal/mean_angle", "val/metric_depth/abs_err", "val/semantic/miou"} <= set(logged)
    # fast_dev_run validates one batch after its one step: the logged angle is the mean over
    # that batch's valid pixels of the angle between predicted and true normal, by hand here.
    batch = next(iter(cli.datamodule.val_dataloader()))
    with torch.no_grad():
        normal = cli.model.eval()(batch["image"])["normal"].double()
    target = batch["normal"].double()
    cos = (normal * target).sum(dim=1) / (normal.norm(dim=1) * target.norm(dim=1))
    angle = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))[batch["normal_mask"]]
    assert float(logged["val/normal/mean_angle"]) == pytest.approx(float(angle.mean()), rel=1e-4)


def test_setup_checks_every_split_once_and_remembers_a_pass(tmp_path: Path, monkeypatch) -> None:
    from mtlscene.data.nyuv2.check import NYUv2Checker

    root = write_root(tmp_path / "nyu")
    checked: list[tuple[str, int]] = []
    problems = NYUv2Checker.problems
    monkeypatch.setattr(
        NYUv2Checker,
        "problems",
        lambda self, frame: checked.append((frame.split, frame.index)) or problems(self, frame),
    )
    NYUv2DataModule(str(root), num_workers=0).setup("fit")
    assert sorted(checked) == [("train", i) for i in range(4)] + [("val", 0), ("val", 1)]
    assert (root / "mtlscene_cache" / "checked" / "train.json").is_file()
    checked.clear()
    NYUv2DataModule(str(root), num_workers=0).setup("fit")
    assert checked == []  # unchanged files: the second run only stats them
    path = _break(root, "val", "label", 1, lambda a: _set(a, (0, 1), 20))
    with pytest.raises(DatasetFileError) as error:
        NYUv2DataModule(str(root), num_workers=0).setup("fit")
    assert sorted(checked) == [("val", 0), ("val", 1)]  # train unchanged: still remembered
    assert str(path) in str(error.value) and "invalid labels" in str(error.value)


def test_setup_lists_the_problems_of_train_and_val_together(tmp_path: Path) -> None:
    root = write_root(tmp_path / "nyu")
    train = _break(root, "train", "normal", 0, lambda a: a * 2)
    val = _break(root, "val", "depth", 1, lambda a: _set(a, (2, 2), np.nan))
    with pytest.raises(DatasetFileError) as error:
        NYUv2DataModule(str(root), num_workers=0).setup("fit")
    message = str(error.value)
    assert str(train) in message and "non-unit" in message
    assert str(val) in message and "NaN or inf" in message
    assert "NYUv2 check of" in message


def test_an_empty_split_folder_fails_setup(tmp_path: Path) -> None:
    root = write_root(tmp_path / "nyu")
    for path in (root / "val" / "image").iterdir():
        path.unlink()
    for folder in ("label", "depth", "normal"):
        for path in (root / "val" / folder).iterdir():
            path.unlink()
    with pytest.raises(DatasetFileError, match="no frames for split 'val'"):
        NYUv2DataModule(str(root), num_workers=0).setup("validate")
