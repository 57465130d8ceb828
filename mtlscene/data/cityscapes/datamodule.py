"""LightningDataModule serving CityScapes (or the built-in synthetic CityScapes-format data)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mtlscene.data.cityscapes import cache as prepared
from mtlscene.data.cityscapes import preflight
from mtlscene.data.cityscapes.checker import CityscapesChecker
from mtlscene.data.cityscapes.dataset import CityscapesMultiTask
from mtlscene.data.cityscapes.device_augment import DeviceAugmentation
from mtlscene.data.cityscapes.layout import IMAGE_SUFFIX, has_images
from mtlscene.data.cityscapes.transforms import JointAugmentation
from mtlscene.data.holdout import HeldOutSubset, carve, check_amount
from mtlscene.data.io import DatasetFileError
from mtlscene.data.loaders import evaluation_loader, training_loader
from mtlscene.data.sizes import height_width, whole_number
from mtlscene.data.split_files import SplitFiles, resolved_files


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
        crop_size: (height, width) of the random training crop taken after the random
            scale; None crops the working ``size`` (full-resolution training crops less).
            Validation, test and predict always see whole frames at ``size``.
        test_split: split that ``test`` evaluates. None picks ``val`` on a CityScapes root
            (its test labels are withheld: the files are all-void placeholders) and ``test``
            on synthetic data (generated with real test labels). A split whose labels are
            all void stops with an error instead of printing meaningless numbers.
        predict_split: split that ``predict`` runs on (labels are not needed there).
        val_from_train: the validation (selection) split carved from train: a fraction in
            (0, 1) of the training frames or a whole count, chosen by ``split_seed``, served
            unaugmented while training uses the rest. 0 (default) validates on ``val``.
            Set it wherever a score selects something (a weight search, early stopping)
            and ``test`` evaluates ``val``, i.e. on a real CityScapes root: see
            `mtlscene.data.holdout`.
        split_seed: seed of the held-out choice; apart from ``seed``, so that runs of
            different training seeds share one selection split.
        cache: build the prepared cache (``mtlscene-data prepare``) of every split used, when
            it is missing or stale. Whether set or not, a fresh cache found in ``cache_dir``
            is read instead of the PNG files (identical samples, far faster); a stale one is
            ignored with a warning unless ``cache`` rebuilds it.
        cache_dir: where prepared caches live; None means ``{root}/mtlscene_cache``.
        synthetic: generate procedural CityScapes-format data at ``root`` when missing.
        synthetic_images: images per split for the synthetic data.
        synthetic_seed: seed of the synthetic data.
        synthetic_resolution: (height, width) the synthetic files are written at; None means
            ``size``.
        synthetic_disparity_noise: add stereo-like disparity noise of known per-pixel std to
            the synthetic data and write the std under ``disparity_std/``: the keyword
            arguments of `DisparityNoise` (``{}`` for its
            defaults); None (default): exact disparity. Use its own ``root``.
        seed: seed of the training order and augmentations (per epoch and image, so runs
            and mid-epoch resumes are reproducible).
        pin_memory: load batches into page-locked memory, so that host-to-GPU copies are
            faster and can overlap compute (GPU training; no effect on CPU).
        augment_on_device: run the training augmentation (the same random scale, flip,
            crop and colour jitter) and the target encoding batched on the device, in
            ``on_after_batch_transfer``, instead of in the loader workers, which then only
            read frames (`mtlscene.data.cityscapes.device_augment`). Each sample's parameters
            are still drawn from ``seed``, epoch and index, so runs and resumes are
            reproducible, but the draws differ from the host path's: off by default.
    """

    #: What every batch of the labelled splits holds (``depth_scale`` also, where the
    #: camera files exist); heads' ``batch_keys`` are checked against it at setup.
    batch_keys: tuple[str, ...] = (
        "image",
        "semantic",
        "instance_offset",
        "instance_mask",
        "instance_ids",
        "disparity",
        "disparity_mask",
        "name",
    )

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
        crop_size: Sequence[int] | None = None,
        test_split: str | None = None,
        predict_split: str = "val",
        val_from_train: float = 0,
        split_seed: int = 0,
        cache: bool = False,
        cache_dir: str | None = None,
        synthetic: bool = False,
        synthetic_images: Mapping[str, int] | None = None,
        synthetic_seed: int = 0,
        synthetic_resolution: Sequence[int] | None = None,
        synthetic_disparity_noise: Mapping[str, float] | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        augment_on_device: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.checker = CityscapesChecker(self.root)
        self.size = height_width(size, "data.size")
        self.label_set = label_set
        self.batch_size = whole_number(batch_size, "data.batch_size", 1)
        self.num_workers = whole_number(num_workers, "data.num_workers", 0)
        self.crop_size = height_width(crop_size, "data.crop_size") or self.size
        self._test_split = test_split
        self.predict_split = predict_split
        self.val_from_train = check_amount(val_from_train)  # fails now, not at setup
        self.split_seed = split_seed
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir else prepared.default_cache_dir(self.root)
        self.synthetic = synthetic
        self.synthetic_images = dict(synthetic_images or {"train": 200, "val": 40, "test": 40})
        self.synthetic_seed = synthetic_seed
        self.synthetic_resolution = tuple(synthetic_resolution or self.size)
        self.synthetic_disparity_noise = synthetic_disparity_noise
        self.seed = seed
        self.pin_memory = pin_memory
        self.augmentation = JointAugmentation(self.crop_size, scale_range, hflip_prob, color_jitter)
        self.device_augmentation = (
            DeviceAugmentation(self.crop_size, scale_range, hflip_prob, color_jitter, label_set)
            if augment_on_device
            else None
        )
        self.datasets: dict[str, CityscapesMultiTask] = {}
        self._caches: dict[str, prepared.SplitCache | None] = {}
        self._labels_checked: set[str] = set()
        # Predict's labels failed the check: it predicts from the images alone.
        self._predict_images_only = False
        self._held_out: tuple[list[int], list[int]] | None = None

    @property
    def test_split(self) -> str:
        """The split ``test`` evaluates (see the ``test_split`` argument)."""
        if self._test_split is not None:
            return self._test_split
        from mtlscene.data.cityscapes import synthetic

        is_synthetic = self.synthetic or (self.root / synthetic.MARKER_NAME).is_file()
        return "test" if is_synthetic else "val"

    def prepare_data(self) -> None:
        """Once per node (rank zero): generate synthetic data and build prepared caches."""
        if self.synthetic:
            from mtlscene.data.cityscapes import synthetic

            height, width = self.synthetic_resolution
            noise = self.synthetic_disparity_noise
            try:
                noise = None if noise is None else synthetic.DisparityNoise(**dict(noise))
            except TypeError as error:
                raise ValueError(
                    f"data.synthetic_disparity_noise: {error}; its keys are the arguments of "
                    "mtlscene.data.cityscapes.synthetic.DisparityNoise"
                ) from None
            synthetic.ensure_dataset(
                self.root,
                self.synthetic_images,
                height,
                width,
                self.synthetic_seed,
                disparity_noise=noise,
            )
        if self.cache:
            for split in self._splits_of(self._trainer_stage()):
                self.split_cache(split)

    def _trainer_stage(self) -> str | None:
        trainer = getattr(self, "trainer", None)
        stage = getattr(getattr(trainer, "state", None), "fn", None)
        return None if stage is None else str(getattr(stage, "value", stage))

    @property
    def validation_split(self) -> str:
        """The split whose files ``validate`` reads (``train`` under ``val_from_train``)."""
        return "train" if self.val_from_train else "val"

    def _splits_of(self, stage: str | None) -> list[str]:
        splits = {
            "fit": list(dict.fromkeys(["train", self.validation_split])),
            "validate": [self.validation_split],
            "test": [self.test_split],
            "predict": [self.predict_split],
        }
        if stage in splits:
            return splits[stage]
        # No trainer (a script calling prepare_data): every split it may serve that exists.
        candidates = dict.fromkeys(
            ["train", self.validation_split, self.test_split, self.predict_split]
        )
        return [split for split in candidates if has_images(self.root, split)]

    def split_cache(self, split: str) -> prepared.SplitCache | None:
        """The fresh prepared cache of a split, built first when ``cache`` is set; else None."""
        if split in self._caches:
            return self._caches[split]
        folder = prepared.split_cache_folder(self.cache_dir, split, self.size)
        reason = prepared.stale_reason(folder, self.root, split, self.size)
        if reason is not None and self.cache:
            # Printed, not logged: a build takes minutes on real data, and says where it goes.
            print(f"building the prepared cache of split {split!r}: {reason}", flush=True)
            prepared.build_split_cache(
                self.root, split, self.size, self.cache_dir, workers=self.num_workers
            )
            reason = prepared.stale_reason(folder, self.root, split, self.size)
            if reason is not None:  # the source files changed during the build
                raise prepared.CacheError(f"{reason}: rebuild it once they no longer change")
        if reason is not None:
            if folder.exists():
                warnings.warn(
                    f"not using the prepared cache: {reason}; reading the PNG files instead "
                    "(slow). Rebuild it with "
                    f"`{prepared.prepare_command(self.root, self.size, self.cache_dir)}` or "
                    "set data.cache true",
                    stacklevel=2,
                )
            self._caches[split] = None
        else:
            self._caches[split] = prepared.SplitCache(folder)
        return self._caches[split]

    def dataset(self, split: str, train: bool = False, with_targets: bool = True):
        """The dataset of one split (cached)."""
        key = f"{split}:{train}:{with_targets}"
        device = self.device_augmentation is not None
        if key not in self.datasets:
            self.datasets[key] = CityscapesMultiTask(
                self.root,
                split,
                self.size,
                self.label_set,
                augmentation=self.augmentation if train and not device else None,
                with_targets=with_targets,
                cache=self.split_cache(split),
                device_augmentation=self.device_augmentation if train else None,
            )
        return self.datasets[key]

    def evaluation_dataset(self, split: str) -> CityscapesMultiTask:
        """The dataset of a split that is scored; refuses one whose labels are all void."""
        dataset = self.dataset(split)
        if split not in self._labels_checked:
            if dataset.first_labelled_frame() is None:
                raise DatasetFileError(
                    f"every labelIds file of split {split!r} under {self.root} is void at "
                    f"{self.size[0]}x{self.size[1]}: these are placeholders, not labels "
                    "(CityScapes withholds its test labels), and scores on them would be "
                    "meaningless. Evaluate a labelled split (--data.test_split val, the "
                    "default on CityScapes roots); for test-set scores, write predictions "
                    "with `mtlscene predict --data.predict_split test` and submit them to "
                    "the CityScapes benchmark server"
                )
            self._labels_checked.add(split)
        return dataset

    def setup(self, stage: str) -> None:
        # Building the datasets here scans the files, so bad roots fail before training.
        if stage == "predict":
            # Checked before the first batch, as fit and validate are: a bad image is named
            # here, not inside a DataLoader worker's traceback. Labels only add the ground
            # truth to the pictures: when they fail the check, predict goes without them.
            dataset = self.predict_dataset()
            preflight.check_images(self.root, self.predict_split, dataset.samples)
            if dataset.with_targets:
                try:
                    self.checker.check_once(self.predict_split, dataset.samples, self.cache_dir)
                except DatasetFileError:
                    self._predict_images_only = True
                    warnings.warn(
                        f"the labels of split {self.predict_split!r} of {self.root} have bad "
                        f"files (`mtlscene-data check {self.root} --splits "
                        f"{self.predict_split}` lists them): the pictures show the predictions "
                        "without the ground truth",
                        stacklevel=2,
                    )
            return
        # Every frame's files, before the first step (a passed check is remembered), and the
        # problems of every split the stage uses at once.
        self.checker.check_before_use(
            {
                split: self.dataset(split, train=stage == "fit" and split == "train").samples
                for split in self._splits_of(stage)
            },
            self.cache_dir,
        )
        if stage in ("fit", "validate"):
            self.validation_dataset()
        elif stage == "test":
            self.evaluation_dataset(self.test_split)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Finish the workers' raw training batches on the device (``augment_on_device``)."""
        if self.device_augmentation is not None and isinstance(batch, dict):
            if "raw_targets" in batch:
                return self.device_augmentation(batch)
        return batch

    def _evaluation_loader(self, dataset) -> DataLoader:
        return evaluation_loader(dataset, self.batch_size, self.num_workers, self.pin_memory)

    def held_out(self) -> tuple[list[int], list[int]]:
        """(training, validation) positions in the train split under ``val_from_train``."""
        if self._held_out is None:
            total = len(self.dataset("train").samples)
            try:
                self._held_out = carve(total, self.val_from_train, self.split_seed)
            except ValueError as error:
                raise ValueError(f"{error} (split 'train' of {self.root})") from None
        return self._held_out

    def training_dataset(self) -> CityscapesMultiTask | HeldOutSubset:
        """What ``fit`` trains on: the train split, less the held-out frames."""
        dataset = self.dataset("train", train=True)
        if not self.val_from_train:
            return dataset
        return HeldOutSubset(dataset, self.held_out()[0])

    def validation_dataset(self) -> CityscapesMultiTask | HeldOutSubset:
        """What ``validate`` (and selection) scores: ``val``, or the frames carved from
        train (unaugmented) under ``val_from_train``."""
        if not self.val_from_train:
            return self.evaluation_dataset("val")
        return HeldOutSubset(self.dataset("train"), self.held_out()[1])

    def split_files(self, role: str) -> SplitFiles:
        """The images of a role (``train``, ``val`` or ``test``), to compare roles by file."""
        split = {"train": "train", "val": self.validation_split, "test": self.test_split}[role]
        folder = (self.root / "leftImg8bit" / split).resolve()
        description = f"{role}: {folder}"
        if role == "test" and split != "test":
            description = f"test evaluates {split}: {folder}"
        images = sorted(folder.glob(f"*/*{IMAGE_SUFFIX}"))
        if role in ("train", "val") and self.val_from_train:
            description = (
                f"{role}: {'the rest of' if role == 'train' else 'carved from'} train "
                f"({folder}, val_from_train {self.val_from_train:g}, split_seed "
                f"{self.split_seed})"
            )
            if not images:
                return SplitFiles(role, description, folder)
            training, held_out = carve(len(images), self.val_from_train, self.split_seed)
            images = [images[i] for i in (training if role == "train" else held_out)]
        return SplitFiles(role, description, folder, resolved_files(images) if images else None)

    def train_dataloader(self) -> DataLoader:
        dataset = self.training_dataset()
        return training_loader(
            dataset, self.batch_size, self.num_workers, self.seed, self.pin_memory
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.validation_dataset())

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.evaluation_dataset(self.test_split))

    def predict_dataset(self) -> CityscapesMultiTask:
        """The predict split, with its labels where every frame has them and they passed the
        pre-flight check (the pictures then show the ground truth beside each prediction),
        else the images alone."""
        if not self._predict_images_only:
            try:
                return self.dataset(self.predict_split, with_targets=True)
            except DatasetFileError:
                pass
        return self.dataset(self.predict_split, with_targets=False)

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.predict_dataset())
