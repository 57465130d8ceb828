"""The prepared cache: identical samples, rebuilt when stale, clear errors when corrupt."""

import os
import pickle

import numpy as np
import pytest
import torch

from mtlscene.cli.data import main as data_cli
from mtlscene.data import CityscapesDataModule, CityscapesMultiTask
from mtlscene.data.cityscapes import cache as prepared
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.encoding import decode_disparity
from mtlscene.data.cityscapes.transforms import JointAugmentation
from mtlscene.data.io import read_png
from mtlscene.data.resize import resize_nearest

SIZE = (32, 64)  # working size; the files are written at twice that (64x128)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs")
    return synthetic.generate_dataset(root, {"train": 3, "val": 2}, 64, 128, 0, progress=False)


@pytest.fixture
def root(source, tmp_path):
    """A private copy of the module's dataset (tests below touch, rebuild and corrupt it)."""
    import shutil

    copy = tmp_path / "cs"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(prepared.DEFAULT_FOLDER))
    return copy


def _cached(root, split="train", **kwargs):
    folder = prepared.build_split_cache(root, split, SIZE, progress=False)
    return CityscapesMultiTask(root, split, SIZE, cache=prepared.SplitCache(folder), **kwargs)


def _assert_items_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(
    "augmentation",
    [
        None,
        JointAugmentation(SIZE, scale_range=(0.6, 1.6), hflip_prob=0.5, color_jitter=0.3),
        JointAugmentation((24, 40), scale_range=(1.5, 1.5), hflip_prob=1.0, color_jitter=0.0),
    ],
    ids=["plain", "random-scale-flip-jitter", "scale-flip-crop"],
)
def test_cached_samples_equal_uncached_ones_bit_for_bit(root, augmentation):
    files = CityscapesMultiTask(root, "train", SIZE, augmentation=augmentation)
    cached = _cached(root, augmentation=augmentation)
    assert len(cached) == len(files) == 3
    for index in range(3):
        for seed in (0, 1, 12345):  # several draws of scale and flip per frame
            _assert_items_equal(cached[(index, seed)], files[(index, seed)])


def test_cached_images_without_targets_equal_uncached_ones(root):
    files = CityscapesMultiTask(root, "val", SIZE, with_targets=False)
    cached = _cached(root, "val", with_targets=False)
    for index in range(len(files)):
        _assert_items_equal(cached[index], files[index])
    assert "semantic" not in cached[0] and "depth_scale" in cached[0]


def test_resizing_raw_targets_equals_decoding_then_resizing(root):
    # The cache stores raw file values resized to the working size; the targets must be the
    # ones that decoding at full resolution and resizing afterwards gives.
    dataset = CityscapesMultiTask(root, "train", SIZE)
    files = dataset.samples[0]
    frame = dataset.frame(0)
    disparity, valid = decode_disparity(read_png(files.disparity))
    expected = [
        resize_nearest(m, SIZE).astype(np.float32)
        for m in (read_png(files.label_ids), read_png(files.instance_ids), disparity, valid)
    ]
    got_disparity, got_valid = decode_disparity(frame.raw_disparity)
    got = [m.astype(np.float32) for m in (frame.label_ids, frame.instance_ids)]
    got += [got_disparity.astype(np.float32), got_valid.astype(np.float32)]
    names = ("labelIds", "instanceIds", "disparity", "valid")
    for name, want, have in zip(names, expected, got, strict=True):
        assert np.array_equal(want, have), name
    assert (frame.instance_ids >= 1000).any()  # the frame really has instances


def test_datamodule_reads_a_prepared_cache_and_builds_one_when_asked(root):
    assert data_cli(["prepare", str(root), "--size", *map(str, SIZE), "--no-progress"]) == 0
    module = CityscapesDataModule(root, size=SIZE, num_workers=0)
    module.setup("fit")
    train = module.dataset("train", train=True)
    assert train.cache is not None and train.cache.folder.parent == root / "mtlscene_cache"

    elsewhere = root.parent / "elsewhere"
    module = CityscapesDataModule(root, size=SIZE, num_workers=0, cache=True, cache_dir=elsewhere)
    module.prepare_data()  # no trainer attached: every split it may serve
    assert {p.name for p in elsewhere.iterdir()} == {"train-32x64", "val-32x64"}
    assert not list(elsewhere.glob(".*"))  # no temporary folders left behind


def test_stale_cache_is_ignored_or_rebuilt(root):
    folder = prepared.build_split_cache(root, "train", SIZE, progress=False)
    assert prepared.stale_reason(folder, root, "train", SIZE) is None
    label_file = next((root / "gtFine" / "train").glob("*/*_labelIds.png"))
    stat = label_file.stat()
    os.utime(label_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touch
    reason = prepared.stale_reason(folder, root, "train", SIZE)
    assert "no longer matches the source files" in reason

    module = CityscapesDataModule(root, size=SIZE, num_workers=0)
    with pytest.warns(UserWarning, match="mtlscene-data prepare"):
        assert module.dataset("train").cache is None  # the PNGs are read instead

    module = CityscapesDataModule(root, size=SIZE, num_workers=0, cache=True)
    assert module.dataset("train").cache is not None
    assert prepared.stale_reason(folder, root, "train", SIZE) is None  # rebuilt


def test_other_size_or_format_version_is_not_served(root, monkeypatch):
    folder = prepared.build_split_cache(root, "train", SIZE, progress=False)
    other = prepared.split_cache_folder(root / "mtlscene_cache", "train", (16, 32))
    assert prepared.stale_reason(other, root, "train", (16, 32)).startswith("no prepared cache")
    monkeypatch.setattr(prepared, "FORMAT_VERSION", prepared.FORMAT_VERSION + 1)
    assert "format version" in prepared.stale_reason(folder, root, "train", SIZE)


def test_readers_of_a_replaced_cache_keep_valid_data(root):
    old = _cached(root)
    before = old[(0, 7)]
    label_file = next((root / "gtFine" / "train").glob("*/*_labelIds.png"))
    os.utime(label_file, ns=(0, label_file.stat().st_mtime_ns + 5_000_000_000))
    prepared.build_split_cache(root, "train", SIZE, progress=False)  # replaces the folder
    _assert_items_equal(old[(0, 7)], before)


def test_truncated_cache_file_is_named_with_the_fix(root):
    folder = prepared.build_split_cache(root, "train", SIZE, progress=False)
    image_file = folder / "image.npy"
    image_file.write_bytes(image_file.read_bytes()[:-100])
    with pytest.raises(prepared.CacheError) as error:
        CityscapesDataModule(root, size=SIZE, num_workers=0).setup("fit")
    message = str(error.value)
    assert str(image_file) in message and "truncated" in message
    assert f"mtlscene-data prepare {root.resolve()} --size 32 64" in message
    assert f"delete {folder}" in message

    # `prepare` is the fix: it rebuilds what it cannot read.
    assert data_cli(["prepare", str(root), "--size", "32", "64", "--no-progress"]) == 0
    assert prepared.SplitCache(folder).frame(0).image.shape == (32, 64, 3)

    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(prepared.CacheError, match="manifest.json is corrupt"):
        prepared.stale_reason(folder, root, "train", SIZE)
    assert data_cli(["prepare", str(root), "--size", "32", "64", "--no-progress"]) == 0
    assert prepared.stale_reason(folder, root, "train", SIZE) is None


def test_loader_workers_read_the_cache_like_the_main_process(root):
    from torch.utils.data import DataLoader

    dataset = _cached(root, augmentation=JointAugmentation(SIZE, (0.8, 1.2), 0.5, 0.2))
    keys = [(index, 100 + index) for index in range(len(dataset))]
    in_workers = list(DataLoader(dataset, sampler=keys, batch_size=None, num_workers=2))
    for key, item in zip(keys, in_workers, strict=True):
        _assert_items_equal(item, dataset[key])


def test_cache_pickles_without_its_arrays(root):
    dataset = _cached(root)
    dataset[0]  # maps the files in this process
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.cache._arrays is None
    _assert_items_equal(clone[(1, 3)], dataset[(1, 3)])


def test_prepare_command_reports_up_to_date_and_bad_roots(root, tmp_path, capsys):
    args = ["prepare", str(root), "--size", "32", "64", "--no-progress"]
    assert data_cli(args) == 0
    assert "train: wrote" in capsys.readouterr().out
    assert data_cli(args) == 0
    assert "train: " in (out := capsys.readouterr().out) and "is up to date" in out
    assert data_cli(["prepare", str(tmp_path / "nothing"), "--no-progress"]) == 1
    assert "no split" in capsys.readouterr().err


def test_ddp_ranks_share_one_cache_built_once(ddp_tiny_fit):
    # A 2-process DDP fit with --data.cache true (the suite's shared fit, conftest.py).
    for split in ("train", "val"):
        assert ddp_tiny_fit.stdout.count(f"building the prepared cache of split {split!r}") == 1
    # One cache per split at the working size (beside the record of passed file checks).
    assert ddp_tiny_fit.cache == [
        "checked",
        "train-32x64",
        "val-32x64",
    ]


def test_parallel_prepare_writes_the_same_cache(root):
    serial = prepared.build_split_cache(root, "train", SIZE, root / "a", progress=False)
    parallel = prepared.build_split_cache(root, "train", SIZE, root / "b", False, workers=2)
    for name in prepared.array_layout(3, SIZE):
        assert (serial / f"{name}.npy").read_bytes() == (parallel / f"{name}.npy").read_bytes()
