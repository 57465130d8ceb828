"""A torch Dataset over the official CityScapes layout yielding all three tasks' targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mtlscene.data.cityscapes.cache import SplitCache, prepare_command
from mtlscene.data.cityscapes.device_augment import DeviceAugmentation
from mtlscene.data.cityscapes.encoding import decode_disparity, encode_semantic, instance_offsets
from mtlscene.data.cityscapes.frame import Frame, decode_frame, require_target_files
from mtlscene.data.cityscapes.labels import IGNORE_INDEX, label_id_lut
from mtlscene.data.cityscapes.layout import SampleFiles, find_samples
from mtlscene.data.cityscapes.transforms import JointAugmentation
from mtlscene.data.io import DatasetFileError, read_png
from mtlscene.data.resize import resize_nearest


class CityscapesMultiTask(Dataset):
    """CityScapes frames resized to a working size, with semantic, instance and depth targets.

    Each item is a dict: ``image`` (float 3xHxW in [0, 1]), ``semantic`` (long HxW,
    trainIds or categories, 255 ignore), ``instance_offset`` (float 2xHxW, (dy, dx) pixels to
    the instance centroid), ``instance_mask`` (bool HxW), ``instance_ids`` (long HxW, raw
    instanceIds), ``disparity`` (float HxW, pixels at the working resolution),
    ``disparity_mask`` (bool HxW), ``depth_scale`` (baseline * fx at the working resolution,
    so metric depth = depth_scale / disparity) and ``name`` (the frame's stem).

    Args:
        root: folder with leftImg8bit/, gtFine/, disparity/, camera/.
        split: train, val or test.
        size: working (height, width); 128x256 is "Tiny CityScapes".
        label_set: "trainid" (19 classes) or "category" (7).
        augmentation: joint random transform for training, or None.
        with_targets: False reads only images (prediction on unlabelled data).
        cache: the split's prepared cache at ``size`` (see `mtlscene.data.cityscapes.cache`; the
            caller makes sure it is fresh), read instead of the PNG files; None reads the
            files. Both give identical items: the cache holds exactly the resized frames
            that decoding the files gives, and everything after that is shared.
        device_augmentation: the augmentation that finishes this split's batches on the
            device (``data.augment_on_device``); items are then the raw frames with their
            drawn parameters (the keys of `RAW_KEYS`,
            ``camera_scale`` and ``name``), and ``augmentation`` is not used.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        size: Sequence[int] = (128, 256),
        label_set: str = "trainid",
        augmentation: JointAugmentation | None = None,
        with_targets: bool = True,
        cache: SplitCache | None = None,
        device_augmentation: DeviceAugmentation | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.size = (int(size[0]), int(size[1]))
        self.label_set = label_set
        label_id_lut(label_set)  # fail now on a bad label_set
        self.augmentation = augmentation
        self.device_augmentation = device_augmentation
        self.with_targets = with_targets
        self.samples: list[SampleFiles] = find_samples(self.root, split)
        self.cache = cache
        if cache is not None:
            if cache.size != self.size or cache.stems != [s.stem for s in self.samples]:
                raise DatasetFileError(
                    f"the prepared cache in {cache.folder} does not match split {split!r} of "
                    f"{self.root} at size {self.size}; rebuild it with "
                    f"`{prepare_command(self.root, self.size, cache.folder.parent)} --force`"
                )
        elif with_targets:
            require_target_files(self.root, split, self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def frame(self, index: int) -> Frame:
        """Frame ``index`` at the working size, from the cache or decoded from its files."""
        if self.cache is not None:
            return self.cache.frame(index, self.with_targets)
        return decode_frame(self.samples[index], self.size, self.with_targets)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # A (index, seed) key comes from ResumableSampler and fixes the augmentation.
        index, augmentation_seed = key if isinstance(key, tuple) else (key, None)
        frame = self.frame(index)
        image = frame.image
        scale = self.size[1] / frame.source_shape[1]
        if self.device_augmentation is not None and self.with_targets:
            return self._raw_item(frame, scale, augmentation_seed)
        if not self.with_targets:
            item = {"image": _image_tensor(image), "name": frame.stem}
            if frame.camera_scale is not None:
                item["depth_scale"] = torch.tensor(frame.camera_scale * scale)
            return item

        disparity, valid = decode_disparity(frame.raw_disparity)
        masks = [
            m.astype(np.float32) for m in (frame.label_ids, frame.instance_ids, disparity, valid)
        ]
        if self.augmentation is not None:
            if augmentation_seed is None:  # plain index: follow torch's (seeded) RNG
                augmentation_seed = int(torch.randint(0, 2**31 - 1, ()).item())
            self.augmentation.set_random_seed(augmentation_seed)
            augmented = self.augmentation(image, masks)
            image, masks, scale = augmented.image, augmented.masks, scale * augmented.scale
        label_ids, instance_ids, disparity, valid = masks
        instance_ids_t = torch.from_numpy(instance_ids.round().astype(np.int64))
        offsets, instance_mask = instance_offsets(instance_ids_t)
        valid_t = torch.from_numpy(valid > 0.5)
        item = {
            "image": _image_tensor(image),
            "semantic": torch.from_numpy(
                encode_semantic(label_ids.round().astype(np.int64), self.label_set)
            ).long(),
            "instance_offset": offsets,
            "instance_mask": instance_mask,
            "instance_ids": instance_ids_t,
            # A resize by f divides disparity (in pixels) by 1/f, i.e. multiplies by f.
            "disparity": torch.from_numpy(disparity * scale).float() * valid_t,
            "disparity_mask": valid_t,
            "name": frame.stem,
        }
        if frame.camera_scale is not None:
            item["depth_scale"] = torch.tensor(frame.camera_scale * scale)
        return item

    def _raw_item(self, frame: Frame, scale: float, seed: int | None) -> dict:
        """The frame as read, and its augmentation's draw: the device does the rest."""
        if seed is None:  # plain index: follow torch's (seeded) RNG
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        draw = self.device_augmentation.draw(np.random.default_rng(seed), self.size)
        targets = np.stack([frame.label_ids, frame.instance_ids, frame.raw_disparity])
        item = {
            "raw_image": torch.from_numpy(np.ascontiguousarray(frame.image)),
            "raw_targets": torch.from_numpy(targets.astype(np.int32)),
            "augment": torch.from_numpy(draw.vector()),
            "resize_scale": torch.tensor(scale, dtype=torch.float64),
            "name": frame.stem,
        }
        if frame.camera_scale is not None:
            item["camera_scale"] = torch.tensor(frame.camera_scale, dtype=torch.float64)
        return item

    def first_labelled_frame(self) -> int | None:
        """Index of the first frame with a non-void semantic label at the working size.

        None means every label of the split is void: the placeholder files CityScapes ships
        for its withheld test labels, on which evaluation would print meaningless numbers.
        Stops at the first labelled frame, so a labelled split costs one labelIds read.
        """
        for index in range(len(self)):
            if self.cache is not None:
                label_ids = self.cache.label_ids(index)
            else:
                label_ids = resize_nearest(read_png(self.samples[index].label_ids), self.size)
            if (encode_semantic(label_ids, self.label_set) != IGNORE_INDEX).any():
                return index
        return None


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
