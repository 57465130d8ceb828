"""LightningDataModule over a user's own folder dataset (``images/`` + target folders + YAML)."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mtlscene.data.cache import DEFAULT_FOLDER
from mtlscene.data.folder_check import sample_problems
from mtlscene.data.folder_dataset import FolderDataset
from mtlscene.data.folder_spec import read_spec
from mtlscene.data.loaders import evaluation_loader, training_loader
from mtlscene.data.preflight import check_once, check_splits
from mtlscene.data.sizes import height_width, whole_number


class FolderDataModule(LightningDataModule):
    """Train/val/test/predict loaders over a folder described by its ``dataset.yaml``.

    What a batch holds follows the YAML's ``targets:`` (see :attr:`batch_keys`), so a config
    pairs it with the heads of those targets: ``semantic`` (with ``num_classes`` equal to
    the number of ``classes:``), ``metric_depth`` and ``normal``. The layout and file
    formats are described in docs/datasets/own_data.md.

    Args:
        root: folder holding ``dataset.yaml``, ``images/`` and the target folders.
        size: working (height, width); None keeps the files' size (all images alike).
        batch_size: images per batch and process.
        num_workers: data loading processes.
        hflip_prob: training horizontal flip probability (normals' x is negated).
        train_split: split that ``fit`` trains on.
        val_split: split that ``fit`` and ``validate`` evaluate.
        test_split: split that ``test`` evaluates; None means ``test`` when the YAML defines
            it, else ``val_split``.
        predict_split: split whose images ``predict`` runs on (targets are not read).
        seed: seed of the training order and flips (per epoch and image, so runs and
            mid-epoch resumes are reproducible).
        pin_memory: page-locked batches for faster host-to-GPU copies.
    """

    def __init__(
        self,
        root: str,
        size: Sequence[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        hflip_prob: float = 0.5,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = None,
        predict_split: str | None = None,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Read now: the batch keys (checked against the heads at setup) come from the YAML,
        # and a broken YAML should stop before anything else is built.
        self.spec = read_spec(root)
        self.size = height_width(size or None, "data.size")
        self.batch_size = whole_number(batch_size, "data.batch_size", 1)
        self.num_workers = whole_number(num_workers, "data.num_workers", 0)
        self.hflip_prob = hflip_prob
        self.train_split = train_split
        self.val_split = val_split
        self._test_split = test_split
        self.predict_split = predict_split or val_split
        self.seed = seed
        self.pin_memory = pin_memory
        self.datasets: dict[str, FolderDataset] = {}

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """The keys of a labelled batch, from the YAML's ``targets:``."""
        return self.spec.batch_keys

    @property
    def class_names(self) -> tuple[str, ...]:
        """The semantic classes in id order (empty without a semantic target)."""
        return self.spec.classes

    @property
    def num_classes(self) -> int:
        """Number of semantic classes: the ``num_classes`` of the ``semantic`` head."""
        return self.spec.num_classes

    @property
    def test_split(self) -> str:
        """The split ``test`` evaluates (see the ``test_split`` argument)."""
        if self._test_split is not None:
            return self._test_split
        return "test" if "test" in self.spec.splits else self.val_split

    def dataset(self, split: str, train: bool = False, with_targets: bool = True) -> FolderDataset:
        """The dataset of one split (built once; building it matches every file to its stem)."""
        key = f"{split}:{train}:{with_targets}"
        if key not in self.datasets:
            self.datasets[key] = FolderDataset(
                self.spec.root,
                split,
                self.size,
                hflip_prob=self.hflip_prob if train else 0.0,
                with_targets=with_targets,
                spec=self.spec,
            )
        return self.datasets[key]

    def setup(self, stage: str) -> None:
        # Building the datasets here matches files to stems, so bad folders fail before training.
        if stage == "predict":
            self.dataset(self.predict_split, with_targets=False)
            return
        splits = {
            "fit": [self.train_split, self.val_split],
            "validate": [self.val_split],
            "test": [self.test_split],
        }
        # Every file decoded with the training readers before the first step, every split's
        # problems at once; a pass is remembered by the files' sizes and times.
        check_splits(
            {
                split: self.dataset(
                    split, train=stage == "fit" and split == self.train_split
                ).samples
                for split in splits.get(stage, [])
            },
            lambda split, samples: check_once(
                self.spec.root,
                split,
                samples,
                lambda sample: (sample.image, *sample.targets.values()),
                lambda sample: sample_problems(sample, self.spec),
                self.spec.root / DEFAULT_FOLDER,
            ),
        )

    def _evaluation_loader(self, dataset: FolderDataset) -> DataLoader:
        return evaluation_loader(dataset, self.batch_size, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset(self.train_split, train=True)
        return training_loader(
            dataset, self.batch_size, self.num_workers, self.seed, self.pin_memory
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.val_split))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.test_split))

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.predict_split, with_targets=False))
