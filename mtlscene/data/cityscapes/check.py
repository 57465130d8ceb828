"""Decode every file of a CityScapes frame and list all its problems (``mtlscene-data check``).

The dataset class fails on the first bad file it meets; this check decodes every file of a
frame and returns every problem, so that `mtlscene.data.cityscapes.checker` can list a whole
root's problems grouped by kind and a broken download is fixed in one go.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlscene.data.cityscapes.encoding import instance_label_mismatches, invalid_label_ids
from mtlscene.data.cityscapes.layout import SampleFiles
from mtlscene.data.io import DatasetFileError, read_camera, read_png
from mtlscene.data.report import (
    CORRUPT_PNG,
    INVALID_LABEL_IDS,
    MISSING_FILE,
    SIZE_MISMATCH,
    WRONG_FORMAT,
    Problem,
)
from mtlscene.data.report import KINDS as SHARED_KINDS

INSTANCE_MISMATCH = "instance/label mismatch"
BAD_CAMERA = "unreadable camera"
KINDS: tuple[str, ...] = (*SHARED_KINDS, INSTANCE_MISMATCH, BAD_CAMERA)
"""Every problem kind of a CityScapes root, in the order the report lists them."""

_PACKAGES = {
    "labelIds": "gtFine_trainvaltest.zip",
    "instanceIds": "gtFine_trainvaltest.zip",
    "disparity": "disparity_trainvaltest.zip",
    "camera": "camera_trainvaltest.zip",
}


def check_frame(files: SampleFiles) -> list[Problem]:
    """Every problem of one frame (an empty list when it is fine)."""
    problems: list[Problem] = []
    image = _decode(files.image, problems, mode="RGB")
    arrays: dict[str, np.ndarray | None] = {}
    for name, path in files.target_files().items():
        if not path.is_file():
            problems.append(
                Problem(
                    path,
                    MISSING_FILE,
                    f"{name} file missing for image {files.image.name}; re-extract "
                    f"{_PACKAGES[name]} (or regenerate a synthetic dataset)",
                )
            )
            arrays[name] = None
        elif name == "camera":
            _check_camera(path, problems)
        else:
            arrays[name] = _decode(path, problems)

    image_shape = image.shape[:2] if image is not None else None
    problems += target_problems(
        files, image_shape, arrays["labelIds"], arrays["instanceIds"], arrays["disparity"]
    )
    return problems


def target_problems(
    files: SampleFiles,
    image_shape: tuple[int, int] | None,
    label_ids: np.ndarray | None,
    instance_ids: np.ndarray | None,
    disparity: np.ndarray | None,
) -> list[Problem]:
    """Format and consistency problems of a frame's decoded targets.

    Shared by this check and by the dataset, which raises on the first problem. Arrays that
    could not be read are passed as None and skipped; ``image_shape`` is (height, width).
    """
    problems: list[Problem] = []
    label_ids = _single_channel(files.label_ids, label_ids, problems)
    instance_ids = _single_channel(files.instance_ids, instance_ids, problems)
    if disparity is not None and (disparity.ndim != 2 or disparity.dtype.itemsize < 2):
        problems.append(
            Problem(
                files.disparity,
                WRONG_FORMAT,
                f"disparity PNG is {_describe(disparity)}, not 16-bit single-channel; CityScapes "
                "disparity stores p = d * 256 + 1 in 16 bits: re-extract "
                f"{_PACKAGES['disparity']} (an 8-bit export loses the disparity)",
            )
        )

    if image_shape is not None:
        for path, array in (
            (files.label_ids, label_ids),
            (files.instance_ids, instance_ids),
            (files.disparity, disparity),
        ):
            if array is not None and array.shape[:2] != image_shape:
                problems.append(
                    Problem(
                        path,
                        SIZE_MISMATCH,
                        f"is {array.shape[0]}x{array.shape[1]} (HxW) but its image "
                        f"{files.image.name} is {image_shape[0]}x{image_shape[1]}; all files of "
                        "a frame must have the "
                        "same size as the image (do not resize the ground truth separately)",
                    )
                )

    bad_ids = invalid_label_ids(label_ids) if label_ids is not None else []
    if bad_ids:
        problems.append(
            Problem(
                files.label_ids,
                INVALID_LABEL_IDS,
                f"contains label ids {bad_ids} outside the official CityScapes table (0..33); use "
                "the *_gtFine_labelIds.png files, not trainId or colour images",
            )
        )
    elif label_ids is not None and instance_ids is not None:
        # Skipped when the labelIds file is itself wrong: it would only repeat that problem.
        for message in instance_label_mismatches(instance_ids, label_ids):
            problems.append(Problem(files.instance_ids, INSTANCE_MISMATCH, message))
    return problems


def _decode(path: Path, problems: list[Problem], mode: str | None = None) -> np.ndarray | None:
    try:
        return read_png(path, mode=mode)
    except DatasetFileError as error:
        cause = error.__cause__ or error
        problems.append(
            Problem(
                path,
                CORRUPT_PNG,
                f"cannot be decoded ({cause}); the file is corrupt or truncated: re-download or "
                "re-extract its package (or regenerate a synthetic dataset)",
            )
        )
        return None


def _single_channel(
    path: Path, array: np.ndarray | None, problems: list[Problem]
) -> np.ndarray | None:
    if array is None or array.ndim == 2:
        return array
    problems.append(
        Problem(
            path,
            WRONG_FORMAT,
            f"is {_describe(array)}, but CityScapes id images are single-channel; this looks like "
            "a colour visualisation (_color.png), not the ids file",
        )
    )
    return None


def _check_camera(path: Path, problems: list[Problem]) -> None:
    try:
        read_camera(path)
    except DatasetFileError as error:
        cause = error.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause else "non-positive baseline or fx"
        problems.append(
            Problem(
                path,
                BAD_CAMERA,
                f"unreadable camera file ({detail}); it must be JSON with a positive "
                '"extrinsic": {"baseline": ...} and "intrinsic": {"fx": ...}: re-extract '
                f"{_PACKAGES['camera']}",
            )
        )


def _describe(array: np.ndarray) -> str:
    channels = 1 if array.ndim == 2 else array.shape[-1]
    return f"{channels}-channel {array.dtype.itemsize * 8}-bit"
