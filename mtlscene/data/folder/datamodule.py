"""LightningDataModule over a user's own folder dataset (``images/`` + target folders + YAML)."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mtlscene.data.conventions import DEFAULT_FOLDER
from mtlscene.data.folder.check import FolderChecker
from mtlscene.data.folder.dataset import FolderDataset
from mtlscene.data.folder.files import find_samples
from mtlscene.data.folder.spec import read_spec
from mtlscene.data.holdout import HeldOutSubset, carve, check_amount
from mtlscene.data.loaders import evaluation_loader, training_loader
from mtlscene.data.sizes import height_width, whole_number
from mtlscene.data.split_files import SplitFiles, resolved_files


class FolderDataModule(LightningDataModule):
    """Train/val/test/predict loaders over a folder described by its ``dataset.yaml``.

    What a batch holds follows the YAML's ``targets:`` (see `batch_keys`), so a config
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
        val_split: split that ``fit`` and ``validate`` evaluate (unless ``val_from_train``).
        test_split: split that ``test`` evaluates; None means ``test`` when the YAML defines
            it, else ``val_split``.
        val_from_train: the validation (selection) split carved from ``train_split``: a
            fraction in (0, 1) of its images or a whole count, chosen by ``split_seed`` in
            the order of the sorted stems, served without flips while training uses the
            rest. 0 (default) validates on ``val_split``. See `mtlscene.data.holdout`.
        split_seed: seed of the held-out choice (apart from ``seed``).
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
        val_from_train: float = 0,
        split_seed: int = 0,
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
        self.val_from_train = check_amount(val_from_train)  # fails now, not at setup
        self.split_seed = split_seed
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
        validation = self.train_split if self.val_from_train else self.val_split
        splits = {
            "fit": list(dict.fromkeys([self.train_split, validation])),
            "validate": [validation],
            "test": [self.test_split],
        }
        # Every file decoded with the training readers before the first step, every split's
        # problems at once; a pass is remembered by the files' sizes and times.
        FolderChecker(self.spec.root, self.spec).check_before_use(
            {
                split: self.dataset(
                    split, train=stage == "fit" and split == self.train_split
                ).samples
                for split in splits.get(stage, [])
            },
            self.spec.root / DEFAULT_FOLDER,
        )

    def _evaluation_loader(self, dataset: FolderDataset) -> DataLoader:
        return evaluation_loader(dataset, self.batch_size, self.num_workers, self.pin_memory)

    def held_out(self) -> tuple[list[int], list[int]]:
        """(training, validation) positions in ``train_split`` under ``val_from_train``."""
        samples = self.dataset(self.train_split).samples
        # Carved in the order of the sorted stems: the same choice however the list is ordered.
        order = sorted(range(len(samples)), key=lambda i: samples[i].stem)
        try:
            training, held_out = carve(len(order), self.val_from_train, self.split_seed)
        except ValueError as error:
            raise ValueError(f"{error} (split {self.train_split!r} of {self.spec.root})") from None
        return sorted(order[i] for i in training), sorted(order[i] for i in held_out)

    def training_dataset(self) -> FolderDataset | HeldOutSubset:
        """What ``fit`` trains on: ``train_split``, less the held-out images."""
        dataset = self.dataset(self.train_split, train=True)
        if not self.val_from_train:
            return dataset
        return HeldOutSubset(dataset, self.held_out()[0])

    def validation_dataset(self) -> FolderDataset | HeldOutSubset:
        """What ``validate`` (and selection) scores: ``val_split``, or the images carved
        from ``train_split`` under ``val_from_train``."""
        if not self.val_from_train:
            return self.dataset(self.val_split)
        return HeldOutSubset(self.dataset(self.train_split), self.held_out()[1])

    def split_files(self, role: str) -> SplitFiles:
        """The images of a role (``train``, ``val`` or ``test``), to compare roles by file."""
        carved = role in ("train", "val") and bool(self.val_from_train)
        split = {"train": self.train_split, "val": self.val_split, "test": self.test_split}[role]
        if carved:
            split = self.train_split
        samples = find_samples(self.spec, split, with_targets=False)[0]
        description = f"{role}: split {split!r} ({self.spec.split_file(split)})"
        if carved:
            description = (
                f"{role}: {'the rest of' if role == 'train' else 'carved from'} split "
                f"{split!r} ({self.spec.split_file(split)}, val_from_train "
                f"{self.val_from_train:g}, split_seed {self.split_seed})"
            )
            order = sorted(range(len(samples)), key=lambda i: samples[i].stem)
            training, held_out = carve(len(order), self.val_from_train, self.split_seed)
            samples = [samples[order[i]] for i in (training if role == "train" else held_out)]
        files = resolved_files(sample.image for sample in samples)
        return SplitFiles(role, description, self.spec.images.resolve(), files)

    def train_dataloader(self) -> DataLoader:
        dataset = self.training_dataset()
        return training_loader(
            dataset, self.batch_size, self.num_workers, self.seed, self.pin_memory
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.validation_dataset())

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.test_split))

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset(self.predict_split, with_targets=False))
