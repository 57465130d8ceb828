"""LightningDataModule serving NYUv2 (mtan layout) or the built-in synthetic NYUv2 data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mtlscene.data.conventions import DEFAULT_FOLDER
from mtlscene.data.holdout import carve, check_amount
from mtlscene.data.loaders import evaluation_loader, training_loader
from mtlscene.data.nyuv2.check import NYUv2Checker
from mtlscene.data.nyuv2.dataset import NYUv2Dataset, require_split_folder
from mtlscene.data.nyuv2.layout import NYUV2_SHAPE
from mtlscene.data.nyuv2.transforms import SCALES, ScaleCropFlip
from mtlscene.data.sizes import height_width, whole_number
from mtlscene.data.split_files import SplitFiles, resolved_files


class NYUv2DataModule(LightningDataModule):
    """Train/val/test/predict loaders over NYUv2 as the mtan preprocessing stores it.

    Splits. The files have two splits: ``train`` (795 images) and ``val`` (654 images,
    which are NYUv2's *test* images). The standard protocol of the MTL literature (mtan,
    nash-mtl, FAMO, LibMTL) validates, and selects its reported epoch, on those 654 test
    images (LibMTL issue #75), and every published NYUv2 number we quote follows it. That is
    the default here (``val_from_train: 0``): validation and test both evaluate ``val``.
    With ``val_from_train: N`` (or a fraction), N training images, chosen by
    ``split_seed``, are held out as the validation split (no augmentation) and training
    uses the other ``795 - N``, so model selection never sees the test images; ``test``
    still evaluates the 654. The experiment runner refuses a search (or any selection by
    a score) without it, since it would select on the images it reports.

    Args:
        root: folder holding train/ and val/ (each with image/, label/, depth/, normal/).
        size: working (height, width); None keeps the files' size (288x384 for NYUv2).
        batch_size: images per batch and process.
        num_workers: data loading processes.
        scales: training scale-crop zoom factors, drawn uniformly (nash-mtl/FAMO use
            1.0, 1.2, 1.5); [1.0] turns the scale-crop off.
        hflip_prob: training horizontal flip probability (negates the normals' x).
        val_from_train: training images held out for validation: a whole count, or a
            fraction in (0, 1) of them (0: validate on ``val``). See
            `mtlscene.data.holdout`.
        split_seed: seed of the held-out choice; apart from ``seed`` so that runs with
            different training seeds still share one validation split.
        predict_split: split that ``predict`` runs on.
        synthetic: generate procedural NYUv2-format data at ``root`` when missing.
        synthetic_images: frames per split of the synthetic data (keys train and val).
        synthetic_seed: seed of the synthetic data.
        synthetic_resolution: (height, width) the synthetic files are written at; None
            means 288x384 like the mtan files.
        seed: seed of the training order and augmentations (per epoch and image, so runs
            and mid-epoch resumes are reproducible).
        pin_memory: load batches into page-locked memory (GPU training).
    """

    batch_keys: tuple[str, ...] = (
        "image",
        "semantic",
        "depth",
        "depth_mask",
        "normal",
        "normal_mask",
    )
    """The batch entries this data module provides (heads declare the ones they read)."""

    def __init__(
        self,
        root: str = "data/nyuv2",
        size: Sequence[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        scales: Sequence[float] = SCALES,
        hflip_prob: float = 0.5,
        val_from_train: float = 0,
        split_seed: int = 0,
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
        self.size = height_width(size, "data.size")
        self.batch_size = whole_number(batch_size, "data.batch_size", 1)
        self.num_workers = whole_number(num_workers, "data.num_workers", 0)
        self.augmentation = ScaleCropFlip(scales, hflip_prob)
        self.val_from_train = check_amount(val_from_train)  # fails now, not at setup
        self.split_seed = split_seed
        self.predict_split = predict_split
        self.synthetic = synthetic
        self.synthetic_images = dict(synthetic_images or {"train": 795, "val": 654})
        self.synthetic_seed = synthetic_seed
        self.synthetic_resolution = tuple(synthetic_resolution or NYUV2_SHAPE)
        self.seed = seed
        self.pin_memory = pin_memory
        self.datasets: dict[str, NYUv2Dataset] = {}
        self._checked: set[str] = set()

    def prepare_data(self) -> None:
        """Once per node (rank zero): generate the synthetic data when asked to."""
        if self.synthetic:
            from mtlscene.data.nyuv2 import synthetic as synthetic_indoor

            height, width = self.synthetic_resolution
            synthetic_indoor.ensure_dataset(
                self.root, self.synthetic_images, height, width, self.synthetic_seed
            )

    def _split_dataset(self, split: str, **kwargs) -> NYUv2Dataset:
        dataset = NYUv2Dataset(self.root, split, self.size, check=False, **kwargs)
        self._check([split])
        return dataset

    def _check(self, splits: Sequence[str]) -> None:
        # Every file of the splits, once however many datasets share them, the problems of
        # every split at once; a pass is remembered by the files' sizes and times.
        unchecked = [split for split in dict.fromkeys(splits) if split not in self._checked]
        for split in unchecked:
            require_split_folder(self.root, split)
        NYUv2Checker(self.root).check_before_use(
            dict.fromkeys(unchecked), self.root / DEFAULT_FOLDER
        )
        self._checked.update(unchecked)

    def _split_of(self, role: str) -> str:
        if role in ("train", "train_all") or (role == "val" and self.val_from_train):
            return "train"
        return self.predict_split if role == "predict" else "val"

    def held_out(self) -> tuple[list[int], list[int]]:
        """(training, validation) indices of the train split under ``val_from_train``."""
        count = len(self.dataset("train_all"))
        try:
            return carve(count, self.val_from_train, self.split_seed)
        except ValueError as error:
            raise ValueError(f"{error} (split 'train' of {self.root})") from None

    def split_files(self, role: str) -> SplitFiles:
        """The images of a role (``train``, ``val`` or ``test``), to compare roles by file."""
        split = "train" if role == "train" or (role == "val" and self.val_from_train) else "val"
        folder = (self.root / split / "image").resolve()
        description = f"{role}: {folder}"
        if role == "test":
            description = f"test evaluates val (NYUv2's test images): {folder}"
        count = len(list(folder.glob("*.npy")))
        positions = list(range(count))
        if split == "train" and self.val_from_train:
            description = (
                f"{role}: {'the rest of' if role == 'train' else 'carved from'} train "
                f"({folder}, val_from_train {self.val_from_train:g}, split_seed "
                f"{self.split_seed})"
            )
            if count:
                training, held_out = carve(count, self.val_from_train, self.split_seed)
                positions = training if role == "train" else held_out
        if not count:
            return SplitFiles(role, description, folder)
        return SplitFiles(
            role, description, folder, resolved_files(folder / f"{i}.npy" for i in positions)
        )

    def dataset(self, role: str) -> NYUv2Dataset:
        """The dataset of a role: ``train`` (augmented), ``val``, ``test``, ``predict`` or
        ``train_all`` (every training image, unaugmented). Built once."""
        if role not in self.datasets:
            if role == "train_all":
                built = self._split_dataset("train")
            elif role in ("train", "val") and self.val_from_train:
                training, validation = self.held_out()
                indices = training if role == "train" else validation
                augmentation = self.augmentation if role == "train" else None
                built = NYUv2Dataset(
                    self.root,
                    "train",
                    self.size,
                    indices=indices,
                    augmentation=augmentation,
                    check=False,  # checked with train_all
                )
            elif role == "train":
                built = self._split_dataset("train", augmentation=self.augmentation)
            elif role in ("val", "test"):
                built = self._split_dataset("val")
            elif role == "predict":
                built = self._split_dataset(self.predict_split)
            else:
                raise ValueError(f"unknown dataset role {role!r}")
            self.datasets[role] = built
        return self.datasets[role]

    def setup(self, stage: str) -> None:
        # Every file of the stage's splits is checked before the first step.
        roles = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}
        self._check([self._split_of(role) for role in roles.get(stage, ["predict"])])
        for role in roles.get(stage, ["predict"]):
            self.dataset(role)

    def _evaluation_loader(self, dataset: NYUv2Dataset) -> DataLoader:
        return evaluation_loader(dataset, self.batch_size, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        return training_loader(
            dataset, self.batch_size, self.num_workers, self.seed, self.pin_memory
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("predict"))
