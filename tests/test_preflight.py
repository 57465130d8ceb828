"""fit/validate/test check every frame of their splits before the first step (issue 20), all
problems at once, and remember a passed check by the files' sizes and times."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from handmade import HEIGHT, WIDTH, label_ids, write_frame
from PIL import Image

from mtlscene.data import CityscapesDataModule, DatasetFileError
from mtlscene.data.cityscapes.checker import CityscapesChecker
from mtlscene.data.cityscapes.layout import find_samples
from mtlscene.data.cityscapes.preflight import png_header


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "cs"
    for city in ("aachen", "bochum"):
        write_frame(root, split="train", city=city)
    write_frame(root, split="val")
    return root


def _module(root: Path) -> CityscapesDataModule:
    return CityscapesDataModule(str(root), size=(HEIGHT, WIDTH), num_workers=0, batch_size=1)


def test_wrong_size_label_in_train_stops_fit_at_setup_naming_the_file(root):
    bad = find_samples(root, "train")[1].label_ids
    Image.fromarray(label_ids()[: HEIGHT // 2]).save(bad)
    with pytest.raises(DatasetFileError) as error:
        _module(root).setup("fit")  # before any batch is read
    message = str(error.value)
    assert "split 'train'" in message and "nothing was trained" in message
    assert str(bad) in message
    assert f"is {HEIGHT // 2}x{WIDTH} (HxW)" in message
    assert f"mtlscene-data check {root} --splits train" in message


def test_every_problem_is_listed_at_once(root):
    first, second = find_samples(root, "train")
    labels = label_ids()
    labels[0, 0] = 200
    Image.fromarray(labels).save(first.label_ids)
    with Image.open(second.disparity) as image:
        Image.fromarray((np.array(image) // 256).astype(np.uint8)).save(second.disparity)
    data = second.instance_ids.read_bytes()
    second.instance_ids.write_bytes(data[: len(data) // 2])
    first.camera.write_text("{not json")
    with pytest.raises(DatasetFileError) as error:
        _module(root).setup("fit")
    message = str(error.value)
    assert "label ids [200]" in message
    assert "disparity PNG is 8-bit, not 16-bit" in message
    assert "not a complete PNG (truncated" in message
    assert "unreadable camera file" in message
    assert "4 problem(s) found" in message


@pytest.mark.parametrize(("stage", "split"), [("validate", "val"), ("test", "val")])
def test_validate_and_test_check_the_split_they_score(root, stage, split):
    bad = find_samples(root, split)[0].label_ids
    Image.fromarray(np.dstack([label_ids()] * 3)).save(bad)  # a colour picture
    with pytest.raises(DatasetFileError, match="is a colour PNG"):
        _module(root).setup(stage)
    # Predict needs no labels: bad ones are left out (the pictures lose the ground truth).
    module = _module(root)
    with pytest.warns(UserWarning, match="pictures show the predictions without the ground"):
        module.setup("predict")
    assert module.predict_dataset().with_targets is False


def test_predict_checks_its_images(root):
    image = find_samples(root, "val")[0].image
    image.write_bytes(image.read_bytes()[:-40])  # truncated: no IEND chunk
    with pytest.raises(DatasetFileError, match="1 image\\(s\\) cannot be read") as error:
        _module(root).setup("predict")
    assert str(image) in str(error.value) and "\n" not in str(error.value)


def test_a_passed_check_is_remembered_until_a_file_changes(root):
    samples = find_samples(root, "train")
    cache = root / "mtlscene_cache"
    checker = CityscapesChecker(root)
    assert checker.check_once("train", samples, cache) is True
    assert checker.check_once("train", samples, cache) is False  # remembered: nothing read
    assert (cache / "checked" / "train.json").is_file()
    # The same size but a new modification time: checked again, and the problem found.
    labels = label_ids()
    labels[1, 1] = 250
    Image.fromarray(labels).save(samples[0].label_ids)
    stat = samples[0].label_ids.stat()
    os.utime(samples[0].label_ids, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DatasetFileError, match=r"label ids \[250\]"):
        checker.check_once("train", samples, cache)


def test_png_header_reads_size_depth_and_completeness(root):
    files = find_samples(root, "val")[0]
    assert png_header(files.image) == (HEIGHT, WIDTH, 8, 2)
    assert png_header(files.disparity) == (HEIGHT, WIDTH, 16, 0)
    files.image.write_bytes(files.image.read_bytes()[:-5])
    assert png_header(files.image) is None


def test_folder_data_checks_every_file_content_at_setup_and_remembers(tmp_path, monkeypatch):
    from test_folder_data import labels_of, save_png, write_spec

    from mtlscene.data import FolderDataModule

    root = tmp_path / "mine"
    for index, stem in enumerate(["a", "b", "c"]):
        save_png(root / "images" / f"{stem}.png", np.zeros((4, 6, 3), np.uint8))
        save_png(root / "labels" / f"{stem}.png", labels_of(index))
    (root / "train.txt").write_text("a\nb\n")
    (root / "val.txt").write_text("c\n")
    write_spec(root, targets={"semantic": "labels"})
    bad = labels_of(0)
    bad[1, 1] = 9  # class 9 of a three-class dataset
    save_png(root / "labels" / "b.png", bad)
    module = FolderDataModule(str(root), batch_size=1, num_workers=0)
    with pytest.raises(DatasetFileError) as error:
        module.setup("fit")  # before any batch is read
    assert str(root / "labels" / "b.png") in str(error.value)
    save_png(root / "labels" / "b.png", labels_of(1))
    FolderDataModule(str(root), batch_size=1, num_workers=0).setup("fit")
    assert (root / "mtlscene_cache" / "checked" / "train.json").is_file()
    # A second run on unchanged files only stats them; a changed file is checked again.
    from mtlscene.data.folder.check import FolderChecker

    checked = []
    problems = FolderChecker.problems
    monkeypatch.setattr(
        FolderChecker,
        "problems",
        lambda self, sample: checked.append(sample.stem) or problems(self, sample),
    )
    FolderDataModule(str(root), batch_size=1, num_workers=0).setup("fit")
    assert checked == []
    save_png(root / "labels" / "c.png", bad)
    with pytest.raises(DatasetFileError) as error:
        FolderDataModule(str(root), batch_size=1, num_workers=0).setup("fit")
    assert checked == ["c"] and str(root / "labels" / "c.png") in str(error.value)
    assert "Folder dataset check of" in str(error.value)


def test_problems_of_train_and_val_are_reported_together(root):
    train_label = find_samples(root, "train")[0].label_ids
    val_camera = find_samples(root, "val")[0].camera
    Image.fromarray(label_ids()[:, : WIDTH // 2]).save(train_label)
    val_camera.write_text("[]")
    with pytest.raises(DatasetFileError) as error:
        _module(root).setup("fit")
    assert str(train_label) in str(error.value) and str(val_camera) in str(error.value)
