"""Check the .npy files of an NYUv2 root (mtan layout) and report every problem.

Used by the NYUv2 data module before the first step (`NYUv2Checker`: every problem of the
splits a run uses at once, a pass remembered), by the dataset built on its own (it raises on
the first problem) and by ``mtlscene-data check`` (it lists them all). Files are opened
memory-mapped and each array is reduced in a few passes, so the full 795 + 654 frames take
seconds, not minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlscene.data.io import DatasetFileError
from mtlscene.data.nyuv2.layout import (
    NYUV2_FOLDERS,
    NYUV2_NUM_CLASSES,
    NYUV2_SPLITS,
    frame_path,
    is_nyuv2_root,
)
from mtlscene.data.report import (
    EMPTY_SPLIT,
    MISSING_FILE,
    DatasetChecker,
    DatasetReport,
    Problem,
)

MISSING_INDEX = "missing index"
UNREADABLE = "unreadable .npy"
WRONG_SHAPE = "wrong shape"
WRONG_DTYPE = "wrong dtype"
NOT_FINITE = "NaN or inf"
OUT_OF_RANGE = "values out of range"
BAD_LABELS = "invalid labels"
NON_UNIT_NORMALS = "non-unit normals"

NORMAL_TOLERANCE = 1e-3
"""Largest accepted | |n| - 1 | of a normal that is not all-zero (invalid)."""

_INDEX = re.compile(r"^(0|[1-9][0-9]*)\.npy$")


@dataclass(frozen=True)
class NYUv2Frame:
    """One index of a split, with what its check needs from the split's listing.

    Attributes:
        split: the split's name.
        index: the frame's number.
        count: frames in the split (the highest index found, plus one).
        missing: the folders that lack this index's file.
        reference: ((height, width), path) of the split's first readable RGB image, the
            size every frame must have; None when there is none.
    """

    split: str
    index: int
    count: int
    missing: tuple[str, ...]
    reference: tuple[tuple[int, int], Path] | None


class NYUv2Checker(DatasetChecker[NYUv2Frame]):
    """An NYUv2 root in the mtan layout (``{split}/{image,label,depth,normal}/{i}.npy``)."""

    name = "nyuv2"
    title = "NYUv2"
    splits = NYUV2_SPLITS
    root_hint = (
        "pass the folder holding train/ and val/ (each with image/, label/, depth/ and normal/)"
    )

    @staticmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` has ``train/image/0.npy`` or ``val/image/0.npy``."""
        return is_nyuv2_root(root)

    def frames(self, split: str) -> tuple[Sequence[NYUv2Frame], list[Problem]]:
        """Every index from 0 to the highest found (the numbering must have no gaps)."""
        indices = {folder: _indices(self.root / split / folder) for folder in NYUV2_FOLDERS}
        found = set().union(*indices.values())
        if not found:
            return [], [
                Problem(
                    self.root / split,
                    EMPTY_SPLIT,
                    f"no frames for split {split!r}: expected {split}/image/0.npy, "
                    f"{split}/label/0.npy, ... under the root (the mtan NYUv2 layout)",
                )
            ]
        count = max(found) + 1
        missing = {
            index: tuple(folder for folder in NYUV2_FOLDERS if index not in indices[folder])
            for index in range(count)
        }
        reference = None
        for index in (i for i in range(count) if not missing[i]):
            path = frame_path(self.root, split, "image", index)
            shape = _rgb_shape(path)
            if shape is not None:
                reference = (shape, path)
                break
        frames = [NYUv2Frame(split, i, count, missing[i], reference) for i in range(count)]
        return frames, []

    def paths(self, frame: NYUv2Frame) -> Iterable[Path]:
        return [frame_path(self.root, frame.split, f, frame.index) for f in NYUV2_FOLDERS]

    def problems(self, frame: NYUv2Frame) -> list[Problem]:
        split, index = frame.split, frame.index
        if len(frame.missing) == len(NYUV2_FOLDERS):
            return [
                Problem(
                    frame_path(self.root, split, "image", index),
                    MISSING_INDEX,
                    f"frame {index} is missing from every folder, but frames go up to "
                    f"{frame.count - 1}: the files must be numbered 0..N-1 without gaps",
                )
            ]
        if frame.missing:
            return [
                Problem(
                    frame_path(self.root, split, folder, index),
                    MISSING_FILE,
                    f"{folder} file missing for frame {index} (the other folders have it); "
                    "every frame needs image, label, depth and normal files",
                )
                for folder in frame.missing
            ]
        return check_frame(self.root, split, index, frame.reference)[0]


def check_nyuv2(
    root: str | Path, splits: Iterable[str] = NYUV2_SPLITS, progress: bool = True
) -> DatasetReport:
    """Check every frame of the given splits of an NYUv2 root, collecting all problems."""
    return NYUv2Checker(root).report(splits, progress)


def require_valid_split(root: str | Path, split: str) -> int:
    """The number of frames of a split whose files are all fine; else DatasetFileError
    naming the first bad file and what is wrong with it (missing files before bad ones)."""
    checker = NYUv2Checker(root)
    frames, problems = checker.frames(split)
    for frame in frames:
        problems += checker.problems(frame)
    problems.sort(key=lambda p: p.kind not in (MISSING_INDEX, MISSING_FILE))  # stable
    if problems:
        first = problems[0]
        more = (
            f" ({len(problems) - 1} more problem(s); `mtlscene-data check {root}` lists them all)"
            if len(problems) > 1
            else ""
        )
        raise DatasetFileError(f"{first.path}: {first.kind}: {first.message}{more}")
    return len(frames)


def check_frame(
    root: Path, split: str, index: int, reference: tuple[tuple[int, int], Path] | None = None
) -> tuple[list[Problem], tuple[int, int] | None]:
    """Problems of one frame's four files, and its (height, width) when its image is fine.

    Args:
        reference: ((height, width), path) of the split's first image; every file must
            have that size, since frames are batched together.
    """
    problems: list[Problem] = []
    arrays = {
        folder: _load(frame_path(root, split, folder, index), problems) for folder in NYUV2_FOLDERS
    }
    image = arrays["image"]
    image_path = frame_path(root, split, "image", index)
    if image is None:
        return problems, None
    if image.ndim != 3 or image.shape[2] != 3:
        problems.append(
            Problem(image_path, WRONG_SHAPE, f"image has shape {image.shape}, expected HxWx3 RGB")
        )
        return problems, None
    shape = image.shape[:2]
    if reference is not None and shape != reference[0]:
        problems.append(
            Problem(
                image_path,
                WRONG_SHAPE,
                f"image is {shape[0]}x{shape[1]} but {reference[1]} is "
                f"{reference[0][0]}x{reference[0][1]}; every frame of a split must have one size",
            )
        )
    expected = {
        "label": [shape],
        "depth": [shape, (*shape, 1)],
        "normal": [(*shape, 3)],
    }
    for folder, shapes in expected.items():
        array = arrays[folder]
        if array is not None and array.shape not in shapes:
            wanted = " or ".join(str(s) for s in shapes)
            problems.append(
                Problem(
                    frame_path(root, split, folder, index),
                    WRONG_SHAPE,
                    f"{folder} has shape {array.shape}, expected {wanted} to match its image "
                    f"{image_path.name} ({shape[0]}x{shape[1]})",
                )
            )
            arrays[folder] = None
    checks = (
        ("image", _image_problem),
        ("label", _label_problem),
        ("depth", _depth_problem),
        ("normal", _normal_problem),
    )
    for folder, check in checks:
        if arrays[folder] is not None:
            found = check(arrays[folder])
            if found is not None:
                problems.append(Problem(frame_path(root, split, folder, index), *found))
    return problems, shape


def _indices(folder: Path) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := _INDEX.match(p.name))}


def _rgb_shape(path: Path) -> tuple[int, int] | None:
    """(height, width) of a readable HxWx3 image file, else None (its problems come later)."""
    image = _load(path, [])
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        return None
    return image.shape[:2]


def _load(path: Path, problems: list[Problem]) -> np.ndarray | None:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        problems.append(
            Problem(
                path,
                UNREADABLE,
                f"cannot be read as a .npy array ({error}); re-create it with numpy.save",
            )
        )
        return None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        problems.append(Problem(path, WRONG_DTYPE, f"holds {array.dtype} values, expected numbers"))
        return None
    return array


def _min_max(array: np.ndarray) -> tuple[float, float]:
    # NaN propagates through min and max, inf shows in them: one pass finds all three.
    return float(array.min()), float(array.max())


def _image_problem(image: np.ndarray) -> tuple[str, str] | None:
    if not np.issubdtype(image.dtype, np.floating):
        return (
            WRONG_DTYPE,
            f"image is {image.dtype}, expected floats in [0, 1] (divide 8-bit images by 255)",
        )
    low, high = _min_max(image)
    if not np.isfinite(low + high):
        return NOT_FINITE, "image contains NaN or infinite values"
    if low < 0 or high > 1:
        return OUT_OF_RANGE, f"image values span [{low:.4g}, {high:.4g}], expected [0, 1]"
    return None


def _label_problem(label: np.ndarray) -> tuple[str, str] | None:
    low, high = _min_max(label)
    if not np.isfinite(low + high):
        return NOT_FINITE, "label contains NaN or infinite values"
    bad = np.zeros(label.shape, bool)
    if low < -1 or high > NYUV2_NUM_CLASSES - 1:
        bad |= (label < -1) | (label > NYUV2_NUM_CLASSES - 1)
    if np.issubdtype(label.dtype, np.floating):
        bad |= label != np.floor(label)
    if bad.any():
        values = np.unique(np.asarray(label[bad]))
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (" ..." if len(values) > 5 else "")
        return (
            BAD_LABELS,
            f"label has {int(bad.sum())} pixel(s) with values {shown}; expected whole numbers "
            f"0..{NYUV2_NUM_CLASSES - 1} (the 13 NYUv2 classes) or -1 (unlabelled)",
        )
    return None


def _depth_problem(depth: np.ndarray) -> tuple[str, str] | None:
    low, high = _min_max(depth)
    if not np.isfinite(low + high):
        return NOT_FINITE, "depth contains NaN or infinite values (store invalid depth as 0)"
    if low < 0:
        return OUT_OF_RANGE, f"depth has negative values (min {low:.4g}); metric depth is >= 0"
    return None


def _normal_problem(normal: np.ndarray) -> tuple[str, str] | None:
    squared = np.einsum("...i,...i->...", normal, normal, dtype=np.float64)
    if not np.isfinite(squared.sum()):
        return NOT_FINITE, "normal contains NaN or infinite values (store invalid normals as 0)"
    off = (squared > 0) & (np.abs(np.sqrt(squared) - 1) > NORMAL_TOLERANCE)
    if off.any():
        worst = float(np.abs(np.sqrt(squared[off]) - 1).max())
        return (
            NON_UNIT_NORMALS,
            f"{int(off.sum())} normal(s) have a length off 1 by more than {NORMAL_TOLERANCE:g} "
            f"(worst by {worst:.4g}); store unit vectors, or all-zero where invalid",
        )
    return None
