"""Device-side augmentation: the host path's targets for the same draws, seeded draws, and
the data module option that moves the augmentation out of the loader workers."""

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from mtlscene.cli.main import build_cli, main
from mtlscene.data import CityscapesMultiTask
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.augment_draw import AugmentDraw
from mtlscene.data.cityscapes.device_augment import RAW_KEYS, DeviceAugmentation
from mtlscene.data.cityscapes.encoding import decode_disparity
from mtlscene.data.cityscapes.transforms import JointAugmentation

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
SIZE = (32, 64)  # working size; the files are written at twice that (64x128)
TARGET_KEYS = ("semantic", "instance_offset", "instance_mask", "instance_ids")
TARGET_KEYS += ("disparity", "disparity_mask", "depth_scale")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cs")
    return synthetic.generate_dataset(folder, {"train": 3}, 64, 128, 0, progress=False)


def _host_draw(dataset: CityscapesMultiTask, index: int, seed: int) -> AugmentDraw:
    """The draw the host path makes for (index, seed): albumentations seeded the same way."""
    frame = dataset.frame(index)
    disparity, valid = decode_disparity(frame.raw_disparity)
    masks = [m.astype(np.float32) for m in (frame.label_ids, frame.instance_ids, disparity, valid)]
    dataset.augmentation.set_random_seed(seed)
    return dataset.augmentation(frame.image, masks).draw


@pytest.mark.parametrize(
    "crop_size, scale_range, hflip_prob, color_jitter",
    [
        (SIZE, (0.75, 1.25), 0.5, 0.2),  # the training defaults
        ((24, 40), (0.5, 1.6), 0.5, 0.4),  # small crop; shrunk frames are zero-padded
        (SIZE, None, 1.0, 0.0),  # flip only
    ],
    ids=["defaults", "pad-and-crop", "flip-only"],
)
def test_device_path_gives_the_host_targets_for_the_same_draws(
    root, crop_size, scale_range, hflip_prob, color_jitter
):
    options = (crop_size, scale_range, hflip_prob, color_jitter)
    host = CityscapesMultiTask(root, "train", SIZE, augmentation=JointAugmentation(*options))
    device = DeviceAugmentation(*options)
    raw = CityscapesMultiTask(root, "train", SIZE, device_augmentation=device)
    keys = [(index, seed) for index in range(3) for seed in (0, 7, 12345)]
    draws = [_host_draw(host, *key) for key in keys]
    assert len({draw.scaled for draw in draws}) > 1 or scale_range is None
    assert any(draw.flip for draw in draws)
    # One batch of samples with different draws: the device path's batching is under test.
    items = [raw[key] for key in keys]
    for item, draw in zip(items, draws, strict=True):
        item["augment"] = torch.from_numpy(draw.vector())
    batch = device(default_collate(items))
    expected = default_collate([host[key] for key in keys])

    assert batch.keys() == expected.keys()
    assert batch["name"] == expected["name"]
    for key in TARGET_KEYS:
        assert batch[key].dtype == expected[key].dtype, key
        assert torch.equal(batch[key], expected[key]), key
    assert batch["disparity_mask"].any() and batch["instance_mask"].any()
    image, reference = batch["image"], expected["image"]
    assert image.shape == reference.shape == (len(keys), 3, *crop_size)
    # Bilinear resampling in OpenCV's fixed point: equal but for a rare rounding step.
    assert (image - reference).abs().max() <= 1.01 / 255
    assert (image != reference).float().mean() < 0.01


def test_device_draws_are_seeded_and_follow_the_configured_ranges():
    device = DeviceAugmentation(SIZE, (0.75, 1.25), 0.5, 0.2)
    draws = [device.draw(np.random.default_rng(seed), SIZE) for seed in range(400)]
    again = device.draw(np.random.default_rng(3), SIZE)
    assert again == draws[3] and draws[3] != draws[4]  # reproducible, not constant
    heights = np.array([draw.scaled[0] for draw in draws])
    assert heights.min() == int(SIZE[0] * 0.75) and heights.max() == int(SIZE[0] * 1.25) - 1
    assert 0.4 < np.mean([draw.flip for draw in draws]) < 0.6
    assert 0.7 < np.mean([draw.jitter is not None for draw in draws]) < 0.9
    for draw in draws:
        padded = (max(draw.scaled[0], SIZE[0]), max(draw.scaled[1], SIZE[1]))
        assert 0 <= draw.crop[0] <= padded[0] - SIZE[0]
        assert 0 <= draw.crop[1] <= padded[1] - SIZE[1]
        assert draw.pad[0] == max(0, SIZE[0] - draw.scaled[0]) // 2


class BatchProbe(pl.Callback):
    """Keeps the first training batch as the training step receives it."""

    def __init__(self):
        self.batch = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batch is None:
            self.batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}


def test_augment_on_device_trains_with_raw_worker_batches(capsys):
    cli = build_cli(
        ["--config", TINY, "--data.augment_on_device=true", "--trainer.limit_val_batches=1"],
        run=False,
    )
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    worker_item = data.train_dataloader().dataset[(0, 5)]
    assert set(RAW_KEYS) <= worker_item.keys() and "image" not in worker_item
    assert worker_item["raw_image"].dtype == torch.uint8  # the workers did not augment
    probe = BatchProbe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, data)
    batch = probe.batch
    assert not set(RAW_KEYS) & batch.keys()
    assert set(data.batch_keys) <= batch.keys()
    assert batch["image"].shape == (2, 3, *SIZE) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["semantic"].dtype == torch.long
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics
    tasks = ("semantic", "instance", "depth")
    assert all(torch.isfinite(metrics[f"train/loss/{task}"]) for task in tasks)
    # The preset turns it on; the default leaves the host path (and its numerics) alone.
    preset = CONFIGS / "trainer" / "augment_on_device.yaml"
    args = ["fit", "--config", str(CONFIGS / "cityscapes_tiny.yaml")]
    capsys.readouterr()  # the fit's own output
    for extra in ([], ["--config", str(preset)]):
        with pytest.raises(SystemExit):
            main([*args, *extra, "--print_config"])
        resolved = yaml.safe_load(capsys.readouterr().out)
        assert resolved["data"]["init_args"]["augment_on_device"] is bool(extra)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_path_on_a_gpu_equals_it_on_the_cpu(root):
    device = DeviceAugmentation(SIZE, (0.75, 1.25), 0.5, 0.2)
    raw = CityscapesMultiTask(root, "train", SIZE, device_augmentation=device)
    batch = default_collate([raw[(index, seed)] for index in range(3) for seed in (0, 1)])
    on_cpu = device(dict(batch))
    on_gpu = device({k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()})
    for key, value in on_cpu.items():
        if torch.is_tensor(value):
            assert on_gpu[key].is_cuda and torch.equal(on_gpu[key].cpu(), value), key
