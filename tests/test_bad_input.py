"""Bad CityScapes input fails early through the real dataset, with the file or option named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from handmade import HEIGHT, WIDTH, instance_ids, label_ids, write_frame
from PIL import Image

from mtlscene.data import CityscapesMultiTask, DatasetFileError
from mtlscene.data.cityscapes.layout import find_samples


@pytest.fixture
def root(tmp_path) -> Path:
    return write_frame(tmp_path / "cs", split="val")


@pytest.fixture
def files(root):
    return find_samples(root, "val")[0]


def named(path: Path) -> str:
    return re.escape(str(path))


def test_missing_root_names_the_option(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match="data.root") as error:
        CityscapesMultiTask(missing, "val")
    assert str(missing) in str(error.value)


def test_split_without_images_names_the_split_and_folder(root):
    with pytest.raises(FileNotFoundError, match="no images for split 'train'") as error:
        CityscapesMultiTask(root, "train")
    assert str(root / "leftImg8bit" / "train") in str(error.value)


@pytest.mark.parametrize("target", ["label_ids", "instance_ids", "disparity", "camera"])
def test_missing_target_file_fails_at_construction(root, files, target):
    path = getattr(files, target)
    path.unlink()
    with pytest.raises(DatasetFileError, match=named(path)):
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))
    # Images alone (prediction) do not need the targets: the item is the image file's pixels.
    item = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH), with_targets=False)[0]
    pixels = np.asarray(Image.open(files.image), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(item["image"].numpy(), pixels, rtol=0, atol=1e-7)
    assert set(item) <= {"image", "name", "depth_scale"}  # no target was read


@pytest.mark.parametrize("target", ["image", "label_ids", "instance_ids", "disparity"])
def test_truncated_png_fails_on_reading_the_item(root, files, target):
    path = getattr(files, target)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    dataset = CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))
    with pytest.raises(DatasetFileError, match="corrupt or truncated") as error:
        dataset[0]
    assert str(path) in str(error.value)


def test_corrupt_png_bytes_fail_on_reading_the_item(root, files):
    data = bytearray(files.image.read_bytes())
    middle = len(data) // 2
    data[middle - 10 : middle + 10] = bytes(20)  # zeros inside the compressed pixels
    files.image.write_bytes(bytes(data))
    with pytest.raises(DatasetFileError, match=named(files.image)):
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]


def test_label_size_differing_from_image_is_rejected(root, files):
    Image.fromarray(label_ids()[: HEIGHT // 2, : WIDTH // 2]).save(files.label_ids)
    dataset = CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))
    with pytest.raises(DatasetFileError, match="same size") as error:
        dataset[0]
    assert str(files.label_ids) in str(error.value)
    # Sizes read as configured, [H, W]: height first.
    assert f"{HEIGHT // 2}x{WIDTH // 2} (HxW)" in str(error.value)
    assert f"is {HEIGHT}x{WIDTH};" in str(error.value)


def test_label_ids_outside_the_table_are_rejected(root, files):
    labels = label_ids()
    labels[0, 0] = 200
    Image.fromarray(labels).save(files.label_ids)
    with pytest.raises(DatasetFileError, match=r"label ids \[200\]") as error:
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]
    assert str(files.label_ids) in str(error.value)


@pytest.mark.parametrize("content", ["{not json", '{"extrinsic": {}, "intrinsic": {"fx": 1}}'])
def test_unreadable_camera_json_is_rejected(root, files, content):
    files.camera.write_text(content)
    with pytest.raises(DatasetFileError, match="unreadable camera file") as error:
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]
    assert str(files.camera) in str(error.value)


def test_8_bit_disparity_is_rejected(root, files):
    with Image.open(files.disparity) as image:
        raw = np.array(image)
    Image.fromarray((raw // 256).astype(np.uint8)).save(files.disparity)
    with pytest.raises(DatasetFileError, match=named(files.disparity)):
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]


def test_instance_ids_disagreeing_with_label_ids_are_rejected(root, files):
    ids = instance_ids()
    ids[5, 5] = 26001  # a car instance on a road pixel (labelId 7)
    Image.fromarray(ids.astype(np.uint16)).save(files.instance_ids)
    with pytest.raises(DatasetFileError, match=named(files.instance_ids)):
        CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]
