"""What the check before the first step reads of a CityScapes frame: headers, ids, cameras.

Training reads a frame only when its batch comes, so a bad file used to stop an epoch
halfway, inside a long traceback. The check runs at ``setup`` over every frame of the
splits a command uses and reports all problems at once, as ``mtlscene-data check`` does
(same messages), but reads only what it must (`frame_problems`):

- every PNG's header (size, bit depth, colour type) and its last 12 bytes (a truncated
  file has no ``IEND`` chunk);
- the labelIds images fully (8-bit, small), for ids outside the official table;
- the camera JSON files.

What it leaves to reading (the dataset raises naming the file): damage inside a PNG's
compressed data, and instanceIds disagreeing with labelIds (both need full decoding).

A passed check is remembered (`mtlscene.data.report.check_once`, through
`mtlscene.data.cityscapes.checker.CityscapesChecker`); the next run stats the files and skips
the rest.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mtlscene.data.cityscapes.check import _check_camera, target_problems
from mtlscene.data.cityscapes.encoding import invalid_label_ids
from mtlscene.data.cityscapes.labels import VALID_LABEL_IDS
from mtlscene.data.cityscapes.layout import SampleFiles
from mtlscene.data.io import DatasetFileError, read_png
from mtlscene.data.report import (
    CORRUPT_PNG,
    MAX_LISTED,
    MISSING_FILE,
    SIZE_MISMATCH,
    WRONG_FORMAT,
    Problem,
)

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# PNG colour types: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
_SINGLE_CHANNEL = (0, 3)
_VALID = np.zeros(256, dtype=bool)
_VALID[sorted(VALID_LABEL_IDS)] = True


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(height, width, bit_depth, colour_type)`` of a complete PNG; None when the file is
    not a PNG or is truncated (no ``IEND`` chunk at its end)."""
    try:
        with path.open("rb") as file:
            head = file.read(26)
            file.seek(-12, os.SEEK_END)
            tail = file.read(12)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != _SIGNATURE or head[12:16] != b"IHDR" or tail != _IEND:
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width, head[24], head[25]


def frame_problems(files: SampleFiles) -> list[Problem]:
    """What the pre-flight check finds wrong with one frame (empty when nothing)."""
    problems: list[Problem] = []
    headers = {}
    named = {
        "image": files.image,
        "labelIds": files.label_ids,
        "instanceIds": files.instance_ids,
        "disparity": files.disparity,
    }
    for name, path in named.items():
        if not path.is_file():
            problems.append(Problem(path, MISSING_FILE, f"{name} file missing"))
            continue
        headers[name] = png_header(path)
        if headers[name] is None:
            problems.append(
                Problem(
                    path,
                    CORRUPT_PNG,
                    "not a complete PNG (truncated or another format); re-download or "
                    "re-extract its package (or regenerate a synthetic dataset)",
                )
            )
    image = headers.get("image")
    for name in ("labelIds", "instanceIds", "disparity"):
        header, path = headers.get(name), named[name]
        if header is None:
            continue
        height, width, depth, colour = header
        if colour not in _SINGLE_CHANNEL:
            problems.append(
                Problem(
                    path,
                    WRONG_FORMAT,
                    f"is a colour PNG (colour type {colour}), but CityScapes {name} images "
                    "are single-channel; this looks like a colour visualisation "
                    "(_color.png), not the ids file",
                )
            )
        elif name == "disparity" and depth < 16:
            problems.append(
                Problem(
                    path,
                    WRONG_FORMAT,
                    f"disparity PNG is {depth}-bit, not 16-bit; CityScapes disparity stores "
                    "p = d * 256 + 1 in 16 bits: re-extract disparity_trainvaltest.zip (an "
                    "8-bit export loses the disparity)",
                )
            )
        if image is not None and (height, width) != image[:2]:
            problems.append(
                Problem(
                    path,
                    SIZE_MISMATCH,
                    f"is {height}x{width} (HxW) but its image {files.image.name} is "
                    f"{image[0]}x{image[1]}; all files of a frame must have the same size as "
                    "the image (do not resize the ground truth separately)",
                )
            )
    if headers.get("labelIds") is not None and headers["labelIds"][3] in _SINGLE_CHANNEL:
        try:
            label_ids = read_png(files.label_ids)
        except DatasetFileError as error:
            problems.append(Problem(files.label_ids, CORRUPT_PNG, str(error)))
        else:  # the ids only: sizes and formats were read from the headers above
            if not _ids_valid(label_ids):  # the shared check words the problem
                problems += target_problems(files, None, label_ids, None, None)
    if not files.camera.is_file():
        problems.append(Problem(files.camera, MISSING_FILE, "camera file missing"))
    else:
        _check_camera(files.camera, problems)
    return problems


def image_problems(files: SampleFiles) -> list[Problem]:
    """What the pre-flight check finds wrong with a frame's image alone (prediction)."""
    if not files.image.is_file():
        return [Problem(files.image, MISSING_FILE, "image file missing")]
    if png_header(files.image) is None:
        return [
            Problem(files.image, CORRUPT_PNG, "not a complete PNG: truncated or another format")
        ]
    return []


def check_images(root: Path, split: str, samples: Sequence[SampleFiles]) -> None:
    """Every image of a split that is only predicted on: a complete PNG, else one line naming
    them. Reads 38 bytes a file (its header and end), so nothing is remembered.

    Raises:
        DatasetFileError: naming the unreadable images (the first `MAX_LISTED`).
    """
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        bad = [problem for found in pool.map(image_problems, samples) for problem in found]
    if bad:
        shown = "; ".join(f"{p.path} ({p.message})" for p in bad[:MAX_LISTED])
        more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise DatasetFileError(
            f"split {split!r} of {root}: {len(bad)} image(s) cannot be read, so nothing was "
            f"predicted: {shown}{more}. Replace them (re-download, re-extract or re-export) "
            "or remove them from the folder, then run again"
        )


def _ids_valid(label_ids: np.ndarray) -> bool:
    """Whether every labelId is in the official table (a histogram: faster than unique)."""
    if label_ids.dtype != np.uint8 or label_ids.ndim != 2:
        return not invalid_label_ids(label_ids)
    present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256))
    return bool(_VALID[present].all())


__all__ = [
    "check_images",
    "frame_problems",
    "image_problems",
    "png_header",
]
