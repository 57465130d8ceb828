"""A torch Dataset over the official CityScapes layout yielding all three tasks' targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mtlscene.data.check import target_problems
from mtlscene.data.encoding import decode_disparity, encode_semantic, instance_offsets
from mtlscene.data.io import DatasetFileError, read_camera, read_png
from mtlscene.data.labels import label_id_lut
from mtlscene.data.layout import SampleFiles, find_samples
from mtlscene.data.transforms import JointAugmentation, resize_image, resize_nearest


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
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        size: Sequence[int] = (128, 256),
        label_set: str = "trainid",
        augmentation: JointAugmentation | None = None,
        with_targets: bool = True,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.size = (int(size[0]), int(size[1]))
        self.label_set = label_set
        label_id_lut(label_set)  # fail now on a bad label_set
        self.augmentation = augmentation
        self.with_targets = with_targets
        self.samples: list[SampleFiles] = find_samples(self.root, split)
        if with_targets:
            self._check_files_exist()

    def _check_files_exist(self) -> None:
        # Listing every missing file up front beats failing hours into an epoch.
        missing = [
            str(path)
            for sample in self.samples
            for path in sample.target_files().values()
            if not path.is_file()
        ]
        if missing:
            shown = "\n  ".join(missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise DatasetFileError(
                f"{len(missing)} target files missing under {self.root} for split "
                f"{self.split!r}:\n  {shown}{more}\nrun `mtlscene-data check {self.root}` "
                "for a full report"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # A (index, seed) key comes from ResumableSampler and fixes the augmentation.
        index, augmentation_seed = key if isinstance(key, tuple) else (key, None)
        files = self.samples[index]
        image = read_png(files.image, mode="RGB")
        source_shape = image.shape[:2]
        scale = self.size[1] / image.shape[1]
        image = resize_image(image, self.size)
        camera = read_camera(files.camera) if files.camera.is_file() else None
        if not self.with_targets:
            item = {"image": _image_tensor(image), "name": files.stem}
            if camera is not None:
                item["depth_scale"] = torch.tensor(_depth_scale(camera, scale))
            return item

        label_ids, instance_ids, raw_disparity = self._read_targets(files, source_shape)
        disparity, valid = decode_disparity(raw_disparity)
        masks = [
            resize_nearest(m, self.size).astype(np.float32)
            for m in (label_ids, instance_ids, disparity, valid)
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
            "name": files.stem,
        }
        if camera is not None:
            item["depth_scale"] = torch.tensor(_depth_scale(camera, scale))
        return item

    def _read_targets(
        self, files: SampleFiles, source_shape: tuple[int, int]
    ) -> tuple[np.ndarray, ...]:
        label_ids = read_png(files.label_ids)
        instance_ids = read_png(files.instance_ids)
        raw_disparity = read_png(files.disparity)
        # The same checks as `mtlscene-data check`, which lists every problem at once.
        problems = target_problems(files, source_shape, label_ids, instance_ids, raw_disparity)
        if problems:
            raise DatasetFileError(
                "\n".join(f"{problem.path}: {problem.message}" for problem in problems)
            )
        return label_ids, instance_ids.astype(np.int32), raw_disparity


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def _depth_scale(camera: dict, scale: float) -> float:
    return float(camera["extrinsic"]["baseline"]) * float(camera["intrinsic"]["fx"]) * scale
