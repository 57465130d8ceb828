"""The synthetic generator writes real CityScapes files whose tasks agree geometrically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as official_labels
from PIL import Image

from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.labels import VALID_LABEL_IDS
from mtlscene.data.cityscapes.synthetic import (
    encode_disparity,
    generate_dataset,
    generate_scene,
    is_complete,
    save_png,
)

SPLITS = {"train": 3, "val": 2, "test": 2}
HEIGHT, WIDTH = 64, 128
STEM = re.compile(r"^(synth[A-Za-z0-9]+)_(\d{6})_(\d{6})$")
THING_IDS = {lab.id for lab in official_labels if lab.hasInstances}
SKY, EGO, ROAD, CAR = 23, 1, 7, 26


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, SPLITS, HEIGHT, WIDTH, seed=0, progress=False)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def frames(root: Path):
    """(split, stem, labelIds, instanceIds, raw disparity, camera) of every written frame."""
    for image in sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png")):
        split, city = image.parts[-3], image.parts[-2]
        stem = image.name[: -len("_leftImg8bit.png")]
        gt = root / "gtFine" / split / city
        yield (
            split,
            stem,
            read(gt / f"{stem}_gtFine_labelIds.png"),
            read(gt / f"{stem}_gtFine_instanceIds.png"),
            read(root / "disparity" / split / city / f"{stem}_disparity.png"),
            json.loads((root / "camera" / split / city / f"{stem}_camera.json").read_text()),
        )


def all_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_layout_and_encodings_match_cityscapes(dataset: Path) -> None:
    for split, count in SPLITS.items():
        images = sorted((dataset / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(images) == count
        for image in images:
            city = image.parent.name
            stem = image.name[: -len("_leftImg8bit.png")]
            match = STEM.match(stem)
            assert match and match.group(1) == city, stem
            gt = dataset / "gtFine" / split / city
            with Image.open(image) as rgb:
                assert (rgb.mode, rgb.size) == ("RGB", (WIDTH, HEIGHT))
            with Image.open(gt / f"{stem}_gtFine_labelIds.png") as labels:
                assert labels.mode == "L"
            for path in (
                gt / f"{stem}_gtFine_instanceIds.png",
                dataset / "disparity" / split / city / f"{stem}_disparity.png",
            ):
                with Image.open(path) as sixteen:
                    assert sixteen.mode in ("I", "I;16"), path
            camera = json.loads(
                (dataset / "camera" / split / city / f"{stem}_camera.json").read_text()
            )
            assert set(camera) == {"extrinsic", "intrinsic"}
            assert set(camera["intrinsic"]) == {"fx", "fy", "u0", "v0"}
            assert camera["extrinsic"]["baseline"] == pytest.approx(0.209313)
            assert camera["intrinsic"]["fx"] == pytest.approx(2262.52 * WIDTH / 2048)
    marker = json.loads((dataset / "SYNTHETIC.json").read_text())
    assert marker["complete"] and marker["splits"] == SPLITS


def test_the_project_layout_finds_every_frame(dataset: Path) -> None:
    from mtlscene.data.cityscapes.layout import find_samples

    for split, count in SPLITS.items():
        samples = find_samples(dataset, split)
        assert len(samples) == count
        for sample in samples:
            assert all(path.is_file() for path in sample.target_files().values())


def test_same_seed_gives_identical_bytes_and_splits_do_not_shift(tmp_path: Path) -> None:
    first = all_bytes(generate_dataset(tmp_path / "a", SPLITS, HEIGHT, WIDTH, 3, False))
    second = all_bytes(generate_dataset(tmp_path / "b", SPLITS, HEIGHT, WIDTH, 3, False))
    assert first == second
    other = all_bytes(generate_dataset(tmp_path / "c", SPLITS, HEIGHT, WIDTH, 4, False))
    images = [name for name in first if name.endswith("_leftImg8bit.png")]
    assert all(first[name] != other[name] for name in images)
    # A larger train split leaves the val and test images untouched.
    bigger = all_bytes(
        generate_dataset(tmp_path / "d", {**SPLITS, "train": 5}, HEIGHT, WIDTH, 3, False)
    )
    for name in images:
        if not name.startswith("leftImg8bit/train"):
            assert bigger[name] == first[name], name


def test_label_and_instance_ids_follow_the_official_table(dataset: Path) -> None:
    seen_instances = 0
    for _, stem, label, instance, _, _ in frames(dataset):
        assert set(np.unique(label).tolist()) <= VALID_LABEL_IDS, stem
        individual = instance >= 1000
        assert np.array_equal(instance[individual] // 1000, label[individual]), stem
        assert set(np.unique(label[individual]).tolist()) <= THING_IDS, stem
        assert np.array_equal(instance[~individual], label[~individual]), stem
        seen_instances += len(np.unique(instance[individual]))
    assert seen_instances > 5


def test_disparity_is_invalid_exactly_on_sky_and_ego_vehicle(dataset: Path) -> None:
    seen = set()
    for _, stem, label, _, raw, _ in frames(dataset):
        assert np.array_equal(raw == 0, np.isin(label, [SKY, EGO])), stem
        seen |= set(np.unique(label[raw == 0]).tolist())
    assert seen == {SKY, EGO}


def test_road_disparity_matches_the_camera_and_falls_towards_the_horizon(dataset: Path) -> None:
    for _, stem, label, _, raw, camera in frames(dataset):
        fx, fy = camera["intrinsic"]["fx"], camera["intrinsic"]["fy"]
        v0, pitch = camera["intrinsic"]["v0"], camera["extrinsic"]["pitch"]
        baseline, height = camera["extrinsic"]["baseline"], camera["extrinsic"]["z"]
        rows, cols = np.nonzero(label == ROAD)
        assert rows.size > 100, stem
        disparity = (raw[rows, cols].astype(np.float64) - 1) / 256
        # Flat ground, camera pitched down: 1/Z = (cos p (v - v0)/fy + sin p) / h.
        depth = height / (np.cos(pitch) * (rows - v0) / fy + np.sin(pitch))
        assert np.abs(disparity - fx * baseline / depth).max() <= 1 / 256, stem
        medians = [np.median(disparity[rows == r]) for r in np.unique(rows)]
        assert np.all(np.diff(medians) > 0), stem  # rows go down the image: nearer, larger d


def scenes(count: int, height: int = 128, width: int = 256):
    return [generate_scene(np.random.default_rng(seed), height, width) for seed in range(count)]


def test_nearer_objects_look_larger() -> None:
    heights, disparities = [], []
    for scene in scenes(12):
        for value in np.unique(scene.instance_ids[scene.instance_ids >= 1000]):
            if value // 1000 != CAR:
                continue
            rows, cols = np.nonzero(scene.instance_ids == value)
            if rows.size < 20 or rows.max() == scene.image.shape[0] - 1:
                continue  # too small, or cut by the image border
            heights.append(rows.max() - rows.min() + 1)
            disparities.append(np.median(scene.disparity[rows, cols]))
    assert len(heights) >= 10
    assert np.corrcoef(heights, disparities)[0, 1] > 0.8


def test_objects_occlude_each_other() -> None:
    """Some instance borders another, nearer instance: it is partially hidden behind it."""
    for scene in scenes(12, 64, 128):
        ids, d = scene.instance_ids, scene.disparity
        for a, b, da, db in (
            (ids[:, :-1], ids[:, 1:], d[:, :-1], d[:, 1:]),
            (ids[:-1], ids[1:], d[:-1], d[1:]),
        ):
            border = (a >= 1000) & (b >= 1000) & (a != b)
            if np.any(border & (np.abs(da - db) > 0.05)):
                return
    pytest.fail("no instance is partially covered by a nearer one in 12 scenes")


def test_scene_arrays_have_the_documented_types() -> None:
    scene = generate_scene(np.random.default_rng(0), HEIGHT, WIDTH)
    assert scene.image.dtype == np.uint8 and scene.image.shape == (HEIGHT, WIDTH, 3)
    assert scene.label_ids.dtype == np.uint8 and scene.instance_ids.dtype == np.int32
    assert scene.disparity.dtype == np.float32 and scene.disparity_valid.dtype == bool
    assert np.all(scene.disparity[~scene.disparity_valid] == 0)
    assert np.all(scene.disparity[scene.disparity_valid] > 0)
    assert scene.image.std() > 20  # textured, not flat colours


def test_disparity_encoding_round_trips(tmp_path: Path) -> None:
    disparity = np.array([[0.0, 1.5, 100.25], [3.0, 0.0, 7.7]], np.float32)
    valid = np.array([[True, True, True], [False, False, True]])
    raw = encode_disparity(disparity, valid)
    assert raw.dtype == np.uint16 and raw[1, 0] == 0 and raw[0, 0] == 1
    save_png(tmp_path / "d.png", raw)
    back = read(tmp_path / "d.png").astype(np.float64)
    assert (
        np.abs(np.where(valid, (back - 1) / 256, 0) - np.where(valid, disparity, 0)).max()
        <= 1 / 512
    )
    with pytest.raises(ValueError, match="disparity must lie"):
        encode_disparity(np.array([300.0]), np.array([True]))


def test_is_complete_tracks_parameters_and_interruptions(tmp_path: Path, monkeypatch) -> None:
    root = generate_dataset(tmp_path / "ok", SPLITS, HEIGHT, WIDTH, seed=1, progress=False)
    assert is_complete(root, SPLITS, HEIGHT, WIDTH, 1)
    assert not is_complete(root, SPLITS, HEIGHT, WIDTH, 2)
    assert not is_complete(root, {**SPLITS, "val": 3}, HEIGHT, WIDTH, 1)
    assert not is_complete(root, SPLITS, 2 * HEIGHT, 2 * WIDTH, 1)
    assert not is_complete(tmp_path / "missing", SPLITS, HEIGHT, WIDTH, 1)

    written = []

    def crash_after_two(*args) -> None:
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(args)

    monkeypatch.setattr(synthetic.writer, "write_scene", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(root, SPLITS, HEIGHT, WIDTH, seed=1, progress=False)
    assert not is_complete(root, SPLITS, HEIGHT, WIDTH, 1)


def test_regeneration_replaces_old_files_but_never_real_data(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "s", {"train": 4}, HEIGHT, WIDTH, 0, False)
    generate_dataset(root, {"train": 2}, HEIGHT, WIDTH, 0, False)
    assert len(list(root.glob("leftImg8bit/train/*/*.png"))) == 2

    real = tmp_path / "real"
    (real / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="SYNTHETIC.json"):
        generate_dataset(real, {"train": 1}, HEIGHT, WIDTH, 0, False)


def test_generator_is_a_package_of_concepts_and_disparity_encoding_sits_with_decoding():
    from mtlscene.data.cityscapes import encoding
    from mtlscene.data.cityscapes.synthetic import camera, layout, painters, renderer, writer

    assert synthetic.generate_scene is renderer.generate_scene
    assert synthetic.generate_dataset is writer.generate_dataset
    assert synthetic.encode_disparity is encoding.encode_disparity
    assert callable(painters.car_painter) and callable(layout.sample_street)
    assert camera.Camera.at_resolution(512, 1024, 0.0).fx == pytest.approx(2262.52 / 2)
    disparity = np.array([[0.0, 1.5, 255.99]], np.float32)
    valid = np.array([[True, True, False]])
    decoded, decoded_valid = encoding.decode_disparity(encoding.encode_disparity(disparity, valid))
    assert decoded_valid.tolist() == valid.tolist()
    assert decoded[valid].tolist() == [0.0, 1.5]


def _wait_until(condition, what: str, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _waits_for_flock(pid: int, path: Path) -> bool:
    """Whether Linux lists process ``pid`` as blocked on a flock of ``path`` (/proc/locks
    marks a waiter "->": ``1: -> FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF``)."""
    locks = Path("/proc/locks")
    if not locks.exists():
        pytest.skip("needs Linux's /proc/locks to see a process wait for a lock")
    inode = path.stat().st_ino
    for line in locks.read_text().splitlines():
        fields = line.split()
        if "->" in fields:
            waiter = fields[fields.index("->") + 1 :]
            if waiter[3] == str(pid) and waiter[4].rsplit(":", 1)[-1] == str(inode):
                return True
    return False


def test_processes_starting_together_generate_the_dataset_once(tmp_path: Path) -> None:
    """A process finding the dataset missing waits for the one generating it.

    Parallel experiment runs used to clear each other's half-written files (the runner's
    end-to-end test failed about one run in three). While this test holds the lock, a
    second process must block on it and write nothing; once released it generates, and a
    third call finds the dataset complete and leaves it alone.
    """
    import subprocess
    import sys

    from mtlscene.filelock import exclusive_lock

    root = tmp_path / "data" / "shared"
    lock = tmp_path / "data" / ".shared.lock"
    ready = tmp_path / "imported"
    splits = {"train": 2, "val": 1}
    # The child says when its imports are done and it is about to take the lock.
    code = (
        "import sys; from pathlib import Path; from mtlscene.data.cityscapes.synthetic import "
        "ensure_dataset; Path(sys.argv[2]).touch(); "
        f"ensure_dataset(sys.argv[1], {splits!r}, 32, 64, 0, progress=False)"
    )
    with exclusive_lock(lock):
        waiting = subprocess.Popen([sys.executable, "-c", code, str(root), str(ready)])
        _wait_until(lambda: ready.exists() or waiting.poll() is not None, "the child's imports")
        assert ready.exists(), "the child failed before it reached the lock"
        # Then the kernel lists it as waiting for our lock (Linux's /proc/locks); a child that
        # did not wait would instead generate the dataset and exit.
        _wait_until(
            lambda: _waits_for_flock(waiting.pid, lock) or waiting.poll() is not None,
            "the child to block on the lock",
        )
        assert waiting.poll() is None, "the child finished while the lock was held"
        assert _waits_for_flock(waiting.pid, lock) and not root.exists()
    assert waiting.wait(timeout=120) == 0
    assert synthetic.is_complete(root, splits, 32, 64, 0)
    stamp = (root / synthetic.MARKER_NAME).stat().st_mtime_ns
    synthetic.ensure_dataset(root, splits, 32, 64, 0, progress=False)
    assert (root / synthetic.MARKER_NAME).stat().st_mtime_ns == stamp
