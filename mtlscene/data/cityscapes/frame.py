"""One CityScapes frame decoded, checked and resized to the working size.

Both data paths start from a `Frame`: the dataset decodes it from the PNG files on
every read, the prepared cache (`mtlscene.data.cityscapes.cache`) stores it once. Everything after
it (disparity decoding, augmentation, target encoding) is one piece of code shared by both
paths, which is what keeps cached and uncached samples identical.

Targets are kept in their raw file encodings (labelIds, instanceIds, disparity PNG values):
nearest-neighbour resizing only picks pixels and every decoding step is per pixel, so
resizing the raw values and decoding afterwards gives exactly the targets that decoding at
full resolution and resizing would, and the raw values are the most compact (8 or 16 bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlscene.data.cityscapes.check import target_problems
from mtlscene.data.cityscapes.layout import SampleFiles
from mtlscene.data.io import DatasetFileError, read_camera, read_png
from mtlscene.data.resize import resize_image, resize_nearest


@dataclass
class Frame:
    """One frame at the working size, targets still in their file encodings.

    Attributes:
        stem: the frame's name, e.g. ``aachen_000000_000019``.
        image: uint8 HxWx3 RGB (area downscale of the source image).
        source_shape: (height, width) of the source files.
        camera_scale: ``baseline * fx`` of the camera file at the source resolution, or None
            when the frame has no camera file.
        label_ids: uint8 HxW raw labelIds (nearest), None without targets.
        instance_ids: uint16 HxW raw instanceIds (nearest), None without targets.
        raw_disparity: uint16 HxW disparity PNG values (nearest, 0 invalid), None without
            targets.
    """

    stem: str
    image: np.ndarray
    source_shape: tuple[int, int]
    camera_scale: float | None
    label_ids: np.ndarray | None = None
    instance_ids: np.ndarray | None = None
    raw_disparity: np.ndarray | None = None


def decode_frame(files: SampleFiles, size: Sequence[int], with_targets: bool = True) -> Frame:
    """Read one frame's files, check them, and resize everything to ``size``.

    Args:
        files: the frame's paths.
        size: working (height, width).
        with_targets: False reads only the image and (when present) the camera file.

    Raises:
        DatasetFileError: a file is missing, corrupt or inconsistent (the message names it).
    """
    image = read_png(files.image, mode="RGB")
    source_shape = (int(image.shape[0]), int(image.shape[1]))
    camera_scale = None
    if with_targets or files.camera.is_file():
        camera = read_camera(files.camera)
        camera_scale = float(camera["extrinsic"]["baseline"]) * float(camera["intrinsic"]["fx"])
    frame = Frame(files.stem, resize_image(image, size), source_shape, camera_scale)
    if not with_targets:
        return frame
    label_ids = read_png(files.label_ids)
    instance_ids = read_png(files.instance_ids)
    raw_disparity = read_png(files.disparity)
    # The same checks as `mtlscene-data check`, which lists every problem at once.
    problems = target_problems(files, source_shape, label_ids, instance_ids, raw_disparity)
    if problems:
        raise DatasetFileError(
            "\n".join(f"{problem.path}: {problem.message}" for problem in problems)
        )
    # The checks above bound the values (labelIds <= 33, instanceIds < 34000, 16-bit PNG
    # disparity), so these casts are exact; _exact_cast guards the assumption anyway.
    frame.label_ids = _exact_cast(resize_nearest(label_ids, size), np.uint8, files.label_ids)
    frame.instance_ids = _exact_cast(
        resize_nearest(instance_ids, size), np.uint16, files.instance_ids
    )
    frame.raw_disparity = _exact_cast(
        resize_nearest(raw_disparity, size), np.uint16, files.disparity
    )
    return frame


def require_target_files(root: Path, split: str, samples: Sequence[SampleFiles]) -> None:
    """Raise one error listing every missing target file of a split (none: return)."""
    # Listing every missing file up front beats failing hours into an epoch.
    missing = [
        str(path)
        for sample in samples
        for path in sample.target_files().values()
        if not path.is_file()
    ]
    if missing:
        shown = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DatasetFileError(
            f"{len(missing)} target files missing under {root} for split "
            f"{split!r}:\n  {shown}{more}\nrun `mtlscene-data check {root}` "
            "for a full report"
        )


def _exact_cast(array: np.ndarray, dtype: type, path: Path) -> np.ndarray:
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise DatasetFileError(
            f"{path}: values {array.min()}..{array.max()} do not fit the file's official "
            f"encoding ({np.dtype(dtype).name}); re-extract it from its CityScapes package"
        )
    return array.astype(dtype, copy=False)
