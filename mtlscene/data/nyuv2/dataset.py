"""A torch Dataset over NYUv2 in the mtan layout: semantics, metric depth, surface normals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.data.io import MissingDatasetError
from mtlscene.data.nyuv2.check import require_valid_split
from mtlscene.data.nyuv2.layout import NYUV2_FOLDERS, NYUV2_IGNORE_LABEL, frame_path
from mtlscene.data.nyuv2.transforms import ScaleCropFlip


class NYUv2Dataset(Dataset):
    """NYUv2 frames (mtan ``.npy`` files) at a working size, with their three targets.

    Each item is a dict: ``image`` (float 3xHxW in [0, 1]), ``semantic`` (long HxW, classes
    0..12, the files' -1 mapped to the project's ignore value 255), ``depth`` (float HxW,
    metres, 0 where invalid), ``depth_mask`` (bool HxW, depth > 0), ``normal`` (float 3xHxW
    unit vectors, 0 where invalid), ``normal_mask`` (bool HxW, the normal is not all-zero)
    and ``name`` (the frame's index in its split, as text).

    All files of the split are checked when the dataset is built (shapes, NaN/inf, label
    values, unit normals, complete 0..N-1 numbering), so bad data fails before training
    with an error naming the file: see `mtlscene.data.nyuv2.check`. `NYUv2DataModule`
    checks its splits itself (all at once, a pass remembered) and builds with ``check=False``.

    Args:
        root: folder holding train/ and val/, each with image/, label/, depth/, normal/.
        split: "train" or "val" (NYUv2's 654 test images in the mtan files).
        size: working (height, width); None keeps the files' size. Resizing does not change
            metric depth: the image bilinearly (antialiased), targets by nearest neighbour.
        indices: the frames of the split to serve (a held-out subset); None serves all.
        augmentation: random scale-crop and flip for training, or None.
        check: check every file first (turn off only for files checked already).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        size: Sequence[int] | None = None,
        indices: Sequence[int] | None = None,
        augmentation: ScaleCropFlip | None = None,
        check: bool = True,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.augmentation = augmentation
        require_split_folder(self.root, split)
        count = require_valid_split(self.root, split) if check else self._count()
        self.indices = list(range(count)) if indices is None else [int(i) for i in indices]
        outside = [i for i in self.indices if not 0 <= i < count]
        if outside:
            raise ValueError(f"indices {outside[:5]} are outside split {split!r} (0..{count - 1})")

    def _count(self) -> int:
        return len(list((self.root / self.split / "image").glob("*.npy")))

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, position: int) -> dict:
        """The frame at ``position`` at the working size, before augmentation."""
        index = self.indices[position]
        arrays = {
            folder: np.load(frame_path(self.root, self.split, folder, index))
            for folder in NYUV2_FOLDERS
        }
        image = torch.from_numpy(arrays["image"].astype(np.float32)).permute(2, 0, 1)
        label = arrays["label"].astype(np.int64)
        semantic = torch.from_numpy(np.where(label == NYUV2_IGNORE_LABEL, IGNORE_INDEX, label))
        depth = torch.from_numpy(arrays["depth"].astype(np.float32).reshape(label.shape))
        normal = torch.from_numpy(arrays["normal"].astype(np.float32)).permute(2, 0, 1)
        if self.size is not None and tuple(image.shape[-2:]) != self.size:
            image = F.interpolate(
                image[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp(0, 1)
            semantic = _nearest(semantic, self.size).long()
            depth = _nearest(depth, self.size)
            normal = _nearest(normal, self.size)
        return {
            "image": image.contiguous(),
            "semantic": semantic,
            "depth": depth,
            "depth_mask": depth > 0,
            "normal": normal.contiguous(),
            "normal_mask": (normal != 0).any(dim=0),
            "name": str(index),
        }

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # A (position, seed) key comes from ResumableSampler and fixes the augmentation.
        position, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.load(position)
        if self.augmentation is None:
            return sample
        if seed is None:  # plain index: follow torch's (seeded) RNG
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        height, width = sample["image"].shape[-2:]
        params = self.augmentation.sample(np.random.default_rng(seed), height, width)
        return self.augmentation(sample, params)


def require_split_folder(root: Path, split: str) -> None:
    """Raise `MissingDatasetError` saying what to set when a split has no image folder."""
    if not (root / split / "image").is_dir():
        raise MissingDatasetError(
            f"no NYUv2 split {split!r} under {root}: {root / split / 'image'} "
            "does not exist; set data.root to the folder holding train/ and val/ (the "
            "mtan layout: {split}/{image,label,depth,normal}/{i}.npy), or enable "
            "data.synthetic"
        )


def _nearest(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize sampling pixel centres (exact copies of the values)."""
    batch = tensor[None].float() if tensor.ndim == 3 else tensor[None, None].float()
    resized = F.interpolate(batch, size=size, mode="nearest-exact")
    return resized[0] if tensor.ndim == 3 else resized[0, 0]
