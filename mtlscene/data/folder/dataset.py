"""A torch Dataset over a user's own folder: ``images/`` plus one folder per target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mtlscene.data.folder.files import (
    FolderFileError,
    FolderSample,
    find_samples,
    read_image,
    read_target,
)
from mtlscene.data.folder.spec import FolderSpec, read_spec
from mtlscene.data.report import SIZE_MISMATCH
from mtlscene.data.resize import resize_image, resize_nearest


class FolderDataset(Dataset):
    """The images of one split of a folder dataset, with the targets ``dataset.yaml`` names.

    Each item is a dict: ``image`` (float 3xHxW in [0, 1]), ``name`` (the stem), and per
    target in the YAML: ``semantic`` (long HxW, class ids, 255 ignored), ``depth`` (float
    HxW metres, 0 invalid) with ``depth_mask`` (bool HxW), ``normal`` (float 3xHxW unit
    vectors, 0 invalid) with ``normal_mask`` (bool HxW).

    Files are checked as they are read; a bad one stops with an error naming it (run
    ``mtlscene-data check ROOT`` to list every problem at once). Whether each image has all
    its target files is checked here, before any training.

    Args:
        root: the folder holding ``dataset.yaml`` (see `mtlscene.data.folder.spec`).
        split: a split named under ``splits:`` in the YAML.
        size: working (height, width): images are resized with area averaging (bilinear when
            enlarging), targets with nearest neighbour (depth stays in metres). None keeps
            the files' size, which must then be the same for every image of the split.
        hflip_prob: probability of a horizontal flip (training augmentation); a flip negates
            the normals' x component.
        with_targets: False reads only images (prediction on unlabelled data).
        spec: the parsed YAML, when the caller has read it already.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        size: Sequence[int] | None = None,
        hflip_prob: float = 0.0,
        with_targets: bool = True,
        spec: FolderSpec | None = None,
    ) -> None:
        self.spec = spec or read_spec(root)
        self.split = split
        self.hflip_prob = hflip_prob
        self.with_targets = with_targets
        self.samples: list[FolderSample]
        self.samples, problems = find_samples(self.spec, split, with_targets)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            first = problems[0]
            raise FolderFileError(
                first.path,
                first.kind,
                f"{first.detail}{more}; `mtlscene-data check {self.spec.root}` lists them all",
            )
        if not self.samples:
            raise FolderFileError(
                self.spec.split_file(split),
                "empty split",
                f"split {split!r} lists no image stems; write one stem per line",
            )
        self.size = (int(size[0]), int(size[1])) if size else self._common_size()

    def _common_size(self) -> tuple[int, int]:
        # Only the headers are read: batching needs one size, so a mixed split fails now.
        sizes: dict[tuple[int, int], Path] = {}
        for sample in self.samples:
            with Image.open(sample.image) as image:
                sizes.setdefault((image.height, image.width), sample.image)
            if len(sizes) > 1:
                (first, a), (second, b) = sizes.items()
                raise FolderFileError(
                    b,
                    SIZE_MISMATCH,
                    f"is {second[0]}x{second[1]} (HxW) but {a.name} is {first[0]}x{first[1]}; "
                    "images of different sizes need a working size: set `size: [H, W]` on the "
                    "data module",
                )
        return next(iter(sizes))

    def __len__(self) -> int:
        return len(self.samples)

    def arrays(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index`` as checked numpy arrays at the working size, before augmentation."""
        sample = self.samples[index]
        image = read_image(sample.image)
        arrays = {"image": resize_image(image, self.size)}
        for key, path in sample.targets.items():
            target = read_target(key, path, self.spec, image.shape[:2])
            arrays[key] = resize_nearest(target, self.size)
        return arrays

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # A (index, seed) key comes from ResumableSampler and fixes the augmentation.
        index, seed = key if isinstance(key, tuple) else (key, None)
        arrays = self.arrays(index)
        if self.hflip_prob > 0:
            if seed is None:  # plain index: follow torch's (seeded) RNG
                seed = int(torch.randint(0, 2**31 - 1, ()).item())
            if np.random.default_rng(seed).random() < self.hflip_prob:
                arrays = flip_horizontally(arrays)
        item: dict = {
            "image": torch.from_numpy(np.ascontiguousarray(arrays["image"]))
            .permute(2, 0, 1)
            .float()
            / 255.0
        }
        if "semantic" in arrays:
            item["semantic"] = torch.from_numpy(np.ascontiguousarray(arrays["semantic"])).long()
        if "depth" in arrays:
            depth = torch.from_numpy(np.ascontiguousarray(arrays["depth"])).float()
            item["depth"], item["depth_mask"] = depth, depth > 0
        if "normal" in arrays:
            normal = torch.from_numpy(np.ascontiguousarray(arrays["normal"])).float()
            item["normal"] = normal.permute(2, 0, 1).contiguous()
            item["normal_mask"] = normal.abs().sum(dim=-1) > 0
        item["name"] = self.samples[index].stem
        return item


def flip_horizontally(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror every array left-right; normals also get their x component negated."""
    flipped = {key: array[:, ::-1] for key, array in arrays.items()}
    if "normal" in flipped:
        normal = flipped["normal"].copy()
        normal[..., 0] *= -1.0  # x points right in the image, so a mirror reverses it
        flipped["normal"] = normal
    return flipped
