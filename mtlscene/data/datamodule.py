"""LightningDataModule serving CityScapes (or the built-in synthetic CityScapes-format data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mtlscene.data.dataset import CityscapesMultiTask
from mtlscene.data.sampling import ResumableDataLoader, ResumableSampler
from mtlscene.data.transforms import JointAugmentation


class CityscapesDataModule(LightningDataModule):
    """Train/val/test/predict loaders over the official CityScapes layout.

    Args:
        root: folder holding leftImg8bit/, gtFine/, disparity/ and camera/.
        size: working (height, width); 128x256 is the paper's Tiny CityScapes.
        label_set: "trainid" (19 classes) or "category" (7); must match the semantic task.
        batch_size: images per batch and process.
        num_workers: data loading processes.
        scale_range: training random scale (min, max), or None.
        hflip_prob: training horizontal flip probability.
        color_jitter: training brightness/contrast/saturation jitter strength.
        predict_split: split that ``predict`` runs on (labels are not needed there).
        synthetic: generate procedural CityScapes-format data at ``root`` when missing.
        synthetic_images: images per split for the synthetic data.
        synthetic_seed: seed of the synthetic data.
        synthetic_resolution: (height, width) the synthetic files are written at; None means
            ``size``.
        seed: seed of the training order and augmentations (per epoch and image, so runs
            and mid-epoch resumes are reproducible).
        pin_memory: load batches into page-locked memory, so that host-to-GPU copies are
            faster and can overlap compute (GPU training; no effect on CPU).
    """

    def __init__(
        self,
        root: str = "data/cityscapes",
        size: Sequence[int] = (128, 256),
        label_set: str = "trainid",
        batch_size: int = 8,
        num_workers: int = 2,
        scale_range: Sequence[float] | None = (0.75, 1.25),
        hflip_prob: float = 0.5,
        color_jitter: float = 0.2,
        predict_split: str = "val",
        synthetic: bool = False,
        synthetic_images: Mapping[str, int] | None = None,
        synthetic_seed: int = 0,
        synthetic_resolution: Sequence[int] | None = None,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.size = (int(size[0]), int(size[1]))
        self.label_set = label_set
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.predict_split = predict_split
        self.synthetic = synthetic
        self.synthetic_images = dict(synthetic_images or {"train": 200, "val": 40, "test": 40})
        self.synthetic_seed = synthetic_seed
        self.synthetic_resolution = tuple(synthetic_resolution or self.size)
        self.seed = seed
        self.pin_memory = pin_memory
        self.augmentation = JointAugmentation(self.size, scale_range, hflip_prob, color_jitter)
        self.datasets: dict[str, CityscapesMultiTask] = {}

    def prepare_data(self) -> None:
        """Generate the synthetic dataset once (rank zero only) when configured and missing."""
        if not self.synthetic:
            return
        from mtlscene.data import synthetic

        height, width = self.synthetic_resolution
        if not synthetic.is_complete(
            self.root, self.synthetic_images, height, width, self.synthetic_seed
        ):
            synthetic.generate_dataset(
                self.root, self.synthetic_images, height, width, self.synthetic_seed
            )

    def dataset(self, split: str, train: bool = False, with_targets: bool = True):
        """The dataset of one split (cached)."""
        key = f"{split}:{train}:{with_targets}"
        if key not in self.datasets:
            self.datasets[key] = CityscapesMultiTask(
                self.root,
                split,
                self.size,
                self.label_set,
                augmentation=self.augmentation if train else None,
                with_targets=with_targets,
            )
        return self.datasets[key]

    def setup(self, stage: str) -> None:
        # Building the datasets here scans the files, so bad roots fail before training.
        if stage == "fit":
            self.dataset("train", train=True)
            self.dataset("val")
        elif stage in ("validate", "test"):
            self.dataset("val" if stage == "validate" else "test")
        elif stage == "predict":
            self.dataset(self.predict_split, with_targets=False)

    def _evaluation_loader(self, dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train", train=True)
        drop_last = len(dataset) > self.batch_size
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=ResumableSampler(dataset, shuffle=True, seed=self.seed, drop_last=False),
            num_workers=self.num_workers,
            drop_last=drop_last,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.predict_split, with_targets=False))
