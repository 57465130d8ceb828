"""Check every frame of a CityScapes split before the first step, and remember a pass.

Training reads a frame only when its batch comes, so a bad file used to stop an epoch
halfway, inside a long traceback. This check runs at ``setup`` over every frame of the
splits a command uses and reports all problems at once, as ``mtlscene-data check`` does
(same messages), but reads only what it must:

- every PNG's header (size, bit depth, colour type) and its last 12 bytes (a truncated
  file has no ``IEND`` chunk);
- the labelIds images fully (8-bit, small), for ids outside the official table;
- the camera JSON files.

What it leaves to reading (the dataset raises naming the file): damage inside a PNG's
compressed data, and instanceIds disagreeing with labelIds (both need full decoding).

A passed check is remembered by the files' names, sizes and modification times in
``{cache_dir}/checked/{split}.json``; the next run stats the files and skips the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from mtlscene.data.cityscapes.check import (
    CORRUPT_PNG,
    MISSING_FILE,
    SIZE_MISMATCH,
    WRONG_FORMAT,
    DatasetReport,
    Problem,
    _check_camera,
    target_problems,
)
from mtlscene.data.cityscapes.encoding import invalid_label_ids
from mtlscene.data.cityscapes.labels import VALID_LABEL_IDS
from mtlscene.data.cityscapes.layout import SampleFiles
from mtlscene.data.io import DatasetFileError, read_png

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# PNG colour types: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
_SINGLE_CHANNEL = (0, 3)
_VALID = np.zeros(256, dtype=bool)
_VALID[sorted(VALID_LABEL_IDS)] = True
T = TypeVar("T")
MAX_LISTED = 5  # problems listed per kind in the error; `mtlscene-data check` lists all


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


def fingerprint(paths: Iterable[Path]) -> str:
    """A digest of every file's name, size and modification time (changes when any does)."""
    digest = hashlib.sha1()
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def check_once(
    root: Path,
    split: str,
    frames: Sequence[T],
    paths: Callable[[T], Iterable[Path]],
    problems_of: Callable[[T], list[Problem]],
    cache_dir: Path | None,
) -> bool:
    """Check every frame of a split unless an identical set of files passed before.

    Args:
        root: the dataset root (named in the error).
        split: the split's name.
        frames: the split's frames (any per-frame description).
        paths: a frame's files (their names, sizes and times are remembered).
        problems_of: a frame's problems (empty when it is fine); called from threads.
        cache_dir: where the record of passed checks lives (None: not remembered).

    Returns:
        True when the check ran, False when a remembered pass made it unnecessary.

    Raises:
        DatasetFileError: listing the problems, with the command that lists them all.
    """
    record = None if cache_dir is None else Path(cache_dir) / "checked" / f"{split}.json"
    digest = fingerprint(path for frame in frames for path in paths(frame))
    if record is not None and _remembered(record) == digest:
        return False
    report = _FullPaths(root=Path(root), frames_checked={split: len(frames)})
    # Threads: PNG decoding and file reads release the GIL.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for problems in pool.map(problems_of, frames):
            report.problems += problems
    if not report.ok:
        raise DatasetFileError(
            f"split {split!r} of {root} has bad files; nothing was trained or evaluated. "
            f"Fix them (or regenerate the data), then run again; `mtlscene-data check "
            f"{root} --splits {split}` lists every problem.\n"
            + report.format(max_per_kind=MAX_LISTED)
        )
    if record is not None:
        _remember(record, digest, len(frames))
    return True


def check_splits(
    splits: Mapping[str, Sequence[T]], check: Callable[[str, Sequence[T]], bool]
) -> None:
    """Run ``check`` on every split and raise once with the problems of all of them.

    Raises:
        DatasetFileError: the messages of every split that has bad files.
    """
    failures = []
    for split, frames in splits.items():
        try:
            check(split, frames)
        except DatasetFileError as error:
            failures.append(str(error))
    if failures:
        raise DatasetFileError("\n\n".join(failures))


def check_split(
    root: Path, split: str, samples: Sequence[SampleFiles], cache_dir: Path | None
) -> bool:
    """`check_once` for a CityScapes split with `frame_problems`."""
    return check_once(root, split, samples, _frame_paths, frame_problems, cache_dir)


def _frame_paths(files: SampleFiles) -> Iterable[Path]:
    return (files.image, *files.target_files().values())


class _FullPaths(DatasetReport):
    """A report naming each file by its full path (a run's error is read far from the root)."""

    def _display(self, path: Path) -> str:
        return str(path)


def _remembered(record: Path) -> str | None:
    try:
        return json.loads(record.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _remember(record: Path, digest: str, frames: int) -> None:
    # Written atomically (ranks of a DDP run check at once); a read-only dataset folder
    # only means the next run checks again.
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        partial = record.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"fingerprint": digest, "frames": frames}))
        partial.replace(record)
    except OSError:
        pass


__all__ = [
    "MAX_LISTED",
    "check_images",
    "check_once",
    "check_splits",
    "check_split",
    "fingerprint",
    "frame_problems",
    "image_problems",
    "png_header",
]
