"""`mtlscene-data check` reports every broken file at once; `generate` writes data once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlscene.cli.data import main
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.check import BAD_CAMERA, INSTANCE_MISMATCH
from mtlscene.data.cityscapes.checker import check_dataset
from mtlscene.data.cityscapes.layout import find_samples
from mtlscene.data.report import (
    CORRUPT_PNG,
    EMPTY_SPLIT,
    INVALID_LABEL_IDS,
    MISSING_FILE,
    MISSING_ROOT,
    SIZE_MISMATCH,
    WRONG_FORMAT,
)

SPLITS = {"train": 2, "val": 1, "test": 1}
HEIGHT, WIDTH = 32, 64
SKY = 23


@pytest.fixture
def root(tmp_path) -> Path:
    return synthetic.generate_dataset(tmp_path / "cs", SPLITS, HEIGHT, WIDTH, progress=False)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def frames(root: Path):
    """The frames as (train 0, train 1, val 0, test 0)."""
    return [sample for split in SPLITS for sample in find_samples(root, split)]


def break_dataset(root: Path) -> set[tuple[str, Path]]:
    """Inject five different problems; return the (kind, file) pairs a check must report."""
    train0, train1, val0, test0 = frames(root)
    train0.label_ids.unlink()
    data = train1.image.read_bytes()
    train1.image.write_bytes(data[: len(data) // 2])
    Image.fromarray(np.full((HEIGHT // 2, WIDTH // 2), 7, np.uint8)).save(val0.label_ids)
    labels = read(test0.label_ids)
    labels[0, 0] = 200
    Image.fromarray(labels).save(test0.label_ids)
    train0.camera.write_text("{not json")
    return {
        (MISSING_FILE, train0.label_ids),
        (CORRUPT_PNG, train1.image),
        (SIZE_MISMATCH, val0.label_ids),
        (INVALID_LABEL_IDS, test0.label_ids),
        (BAD_CAMERA, train0.camera),
    }


def test_clean_generated_dataset_passes(root, capsys):
    report = check_dataset(root, progress=False)
    assert report.ok, report.format()
    assert report.frames_checked == SPLITS
    assert main(["check", str(root), "--no-progress"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_all_injected_problems_are_reported_at_once(root):
    expected = break_dataset(root)
    report = check_dataset(root, progress=False)
    assert not report.ok
    assert {(p.kind, p.path) for p in report.problems} == expected
    assert report.frames_checked == SPLITS  # the broken frames did not stop the scan
    by_kind = {p.kind: p.message for p in report.problems}
    assert "200" in by_kind[INVALID_LABEL_IDS]
    # Sizes read height first, as configured ([H, W]).
    assert "16x32 (HxW)" in by_kind[SIZE_MISMATCH] and "is 32x64;" in by_kind[SIZE_MISMATCH]
    assert "truncated" in by_kind[CORRUPT_PNG]


def test_cli_prints_every_broken_file_and_exits_1(root, capsys):
    expected = break_dataset(root)
    assert main(["check", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "5 problem(s)" in out
    for kind, path in expected:
        assert kind in out
        assert str(path.relative_to(root)) in out


def test_instance_ids_must_agree_with_label_ids_and_disparity_must_be_16_bit(root):
    train0, train1, val0, _ = frames(root)
    ids = read(train0.instance_ids).astype(np.int32)
    ids[0, 0] = 26001  # a car instance where labelIds has another class
    Image.fromarray(ids.astype(np.uint16)).save(train0.instance_ids)
    ids, labels = read(train1.instance_ids).astype(np.int32), read(train1.label_ids)
    assert (labels == SKY).any()
    ids[labels == SKY] = SKY * 1000 + 1  # an "instance" of sky, a class without instances
    Image.fromarray(ids.astype(np.uint16)).save(train1.instance_ids)
    Image.fromarray((read(val0.disparity) // 256).astype(np.uint8)).save(val0.disparity)

    report = check_dataset(root, progress=False)
    found = {(p.kind, p.path): p.message for p in report.problems}
    assert set(found) == {
        (INSTANCE_MISMATCH, train0.instance_ids),
        (INSTANCE_MISMATCH, train1.instance_ids),
        (WRONG_FORMAT, val0.disparity),
    }
    assert "26001" in found[INSTANCE_MISMATCH, train0.instance_ids]
    assert "without instances" in found[INSTANCE_MISMATCH, train1.instance_ids]
    assert "16-bit" in found[WRONG_FORMAT, val0.disparity]


def test_missing_root_and_empty_split(tmp_path, root, capsys):
    report = check_dataset(tmp_path / "nowhere", progress=False)
    assert [p.kind for p in report.problems] == [MISSING_ROOT]
    report = check_dataset(root, splits=("train", "extra"), progress=False)
    assert [(p.kind, p.path) for p in report.problems] == [
        (EMPTY_SPLIT, root / "leftImg8bit" / "extra")
    ]
    assert report.frames_checked == {"train": 2, "extra": 0}
    assert main(["check", str(root), "--splits", "val", "extra", "--no-progress"]) == 1
    assert "no images for split 'extra'" in capsys.readouterr().out


def test_each_root_is_checked_as_the_dataset_it_holds(tmp_path, root, capsys):
    from mtlscene.data.checkers import CHECKERS, checker_for

    assert sorted(CHECKERS) == ["cityscapes", "folder", "nyuv2"]
    nyuv2 = tmp_path / "nyu" / "train" / "image"
    nyuv2.mkdir(parents=True)
    np.save(nyuv2 / "0.npy", np.zeros((2, 2, 3)))
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "dataset.yaml").write_text("classes: [a]\n")
    found = {
        path.name: checker_for(path).name
        for path in (root, tmp_path / "nyu", tmp_path / "own", tmp_path / "nowhere")
    }
    assert found == {
        root.name: "cityscapes",
        "nyu": "nyuv2",
        "own": "folder",
        "nowhere": "cityscapes",  # matches none: its report says what a root holds
    }
    # A name overrides the layout: a CityScapes root checked as NYUv2 has no frames.
    assert main(["check", str(root), "--dataset", "nyuv2", "--no-progress"]) == 1
    assert "NYUv2 check of" in capsys.readouterr().out
    assert main(["check", str(root), "--dataset", "kitti"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'kitti'" in err and "cityscapes" in err and len(err.splitlines()) == 1


def test_generate_writes_once_then_skips_until_forced(tmp_path, capsys):
    out_dir = tmp_path / "synth"
    args = [
        "generate",
        str(out_dir),
        "--train",
        "2",
        "--val",
        "1",
        "--test",
        "1",
        "--height",
        str(HEIGHT),
        "--width",
        str(WIDTH),
        "--no-progress",
    ]
    assert main(args) == 0
    assert str(out_dir) in capsys.readouterr().out
    assert synthetic.is_complete(out_dir, SPLITS, HEIGHT, WIDTH, 0)
    assert check_dataset(out_dir, progress=False).ok
    image = frames(out_dir)[0].image
    image.write_bytes(b"left alone by a skipped run")

    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    assert image.read_bytes() == b"left alone by a skipped run"

    assert main([*args, "--force"]) == 0
    assert read(image).shape == (HEIGHT, WIDTH, 3)
    marker = json.loads((out_dir / synthetic.MARKER_NAME).read_text())
    assert marker["splits"] == SPLITS and marker["complete"]


def test_usage_errors_exit_2_and_name_the_option(tmp_path, capsys):
    assert main([]) == 2
    assert main(["generate", str(tmp_path), "--height", "0"]) == 2
    assert "--height" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "--seed", "x"]) == 2
    assert "--seed" in capsys.readouterr().err
    real = tmp_path / "real"
    (real / "leftImg8bit").mkdir(parents=True)  # looks like real data: refuse to overwrite
    assert main(["generate", str(real), "--no-progress"]) == 2
    assert "SYNTHETIC.json" in capsys.readouterr().err


def test_module_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene.cli.data", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "generate" in result.stdout
