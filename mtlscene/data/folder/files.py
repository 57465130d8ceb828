"""The files of a folder dataset: finding each image's targets and decoding them, checked.

Every reader raises `FolderFileError` naming the file, the kind of problem (the kinds
of `mtlscene.data.report`) and the fix, so the dataset stops on the first bad file and
``mtlscene-data check`` lists them all with the same messages.

Formats (docs/datasets/own_data.md):

- images: ``.png``, ``.jpg`` or ``.jpeg``, any colour mode (converted to RGB);
- semantic: single-channel PNG (8 or 16 bit, or palette) or 2-D integer ``.npy`` of class
  ids 0..C-1, with the YAML's ``ignore_index`` for unlabelled pixels;
- depth: 16-bit single-channel PNG times ``depth_scale`` metres, or 2-D float ``.npy`` in
  metres; 0 (and, in ``.npy``, non-finite or negative values) means no measurement;
- normal: 8-bit RGB PNG storing ``(n + 1) / 2 * 255`` with black (0, 0, 0) for no normal,
  or HxWx3 float ``.npy`` of unit vectors with all-zero vectors for no normal. x points to
  the right of the image (a horizontal flip negates it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.data.folder.spec import IMAGES_FOLDER, FolderSpec
from mtlscene.data.io import DatasetFileError
from mtlscene.data.report import (
    CORRUPT_PNG,
    INVALID_LABEL_IDS,
    MISSING_FILE,
    SIZE_MISMATCH,
    WRONG_FORMAT,
)

INVALID_VALUES = "invalid values"
DUPLICATE_STEM = "duplicate stem"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TARGET_SUFFIXES = (".png", ".npy")
# Stored unit normals may be off unit length by rounding; beyond this they are not normals
# (e.g. the [0, 1] PNG encoding saved as float).
NORMAL_LENGTH_TOLERANCE = 0.05


class FolderFileError(DatasetFileError):
    """One bad file of a folder dataset.

    Attributes:
        path: the file (or the missing file's expected path).
        kind: a problem kind of `mtlscene.data.report` or this module.
    """

    def __init__(self, path: Path, kind: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.kind = kind
        self.detail = message


@dataclass
class FolderSample:
    """The files of one stem: its image and, per target key, its target file."""

    stem: str
    image: Path
    targets: dict[str, Path] = field(default_factory=dict)


def read_stems(spec: FolderSpec, split: str) -> list[str]:
    """The stems listed in a split's file (blank lines and ``#`` comments skipped)."""
    path = spec.split_file(split)
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def find_samples(
    spec: FolderSpec, split: str, with_targets: bool = True
) -> tuple[list[FolderSample], list[FolderFileError]]:
    """The samples of a split, and every problem found while matching files to stems.

    A stem without an image is left out; a sample with a missing target file is kept
    without it (the problem is reported). Only file names are looked at, nothing is read.
    """
    problems: list[FolderFileError] = []
    images = _index_folder(spec.images, IMAGE_SUFFIXES, problems)
    folders = (
        {
            key: _index_folder(folder, TARGET_SUFFIXES, problems)
            for key, folder in spec.targets.items()
        }
        if with_targets
        else {}
    )
    split_file = spec.split_file(split)
    samples: list[FolderSample] = []
    seen: set[str] = set()
    for stem in read_stems(spec, split):
        if stem in seen:
            problems.append(
                FolderFileError(
                    split_file,
                    DUPLICATE_STEM,
                    f"stem {stem!r} is listed twice; list each image once",
                )
            )
            continue
        seen.add(stem)
        if stem not in images:
            problems.append(
                FolderFileError(
                    spec.images / stem,
                    MISSING_FILE,
                    f"no image for stem {stem!r} listed in {split_file.name}; add "
                    f"{IMAGES_FOLDER}/{stem}.png (or .jpg) or remove the line",
                )
            )
            continue
        sample = FolderSample(stem, images[stem])
        for key, index in folders.items():
            if stem in index:
                sample.targets[key] = index[stem]
            else:
                folder = spec.targets[key]
                problems.append(
                    FolderFileError(
                        folder / f"{stem}.png",
                        MISSING_FILE,
                        f"missing {key} target for image {sample.image.name}: every image of a "
                        f"labelled split needs {folder.name}/{stem}.png (or .npy); add it or "
                        f"remove {stem!r} from {split_file.name}",
                    )
                )
        samples.append(sample)
    return samples, problems


def _index_folder(
    folder: Path, suffixes: tuple[str, ...], problems: list[FolderFileError]
) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in index:
            problems.append(
                FolderFileError(
                    path,
                    DUPLICATE_STEM,
                    f"has the same stem as {index[path.stem].name}; keep one file per stem",
                )
            )
            continue
        index[path.stem] = path
    return index


def read_image(path: Path) -> np.ndarray:
    """An image as HxWx3 uint8 RGB."""
    return _read_pil(path, "image", convert="RGB")


def read_target(
    key: str, path: Path, spec: FolderSpec, image_shape: tuple[int, int] | None
) -> np.ndarray:
    """Decode and check one target file at its stored size (and against the (height,
    width) of its image, unless that is None).

    Returns:
        semantic: int64 HxW class ids with ignored pixels 255; depth: float32 HxW metres
        with 0 where invalid; normal: float32 HxWx3 unit vectors with 0 where invalid.
    """
    reader = {"semantic": _read_semantic, "depth": _read_depth, "normal": _read_normal}[key]
    array = reader(path, spec)
    if image_shape is not None and array.shape[:2] != tuple(image_shape):
        raise FolderFileError(
            path,
            SIZE_MISMATCH,
            f"is {array.shape[0]}x{array.shape[1]} (HxW) but its image is "
            f"{image_shape[0]}x{image_shape[1]}; save targets at the size of their image",
        )
    return array


def _read_semantic(path: Path, spec: FolderSpec) -> np.ndarray:
    labels = _read_npy(path) if path.suffix == ".npy" else _read_pil(path, "semantic")
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise FolderFileError(
            path,
            WRONG_FORMAT,
            f"is {_describe(labels)}, but labels are one class id per pixel: a single-channel "
            "PNG (not a colour visualisation) or a 2-D integer .npy",
        )
    labels = labels.astype(np.int64)
    ignored = labels == spec.ignore_index
    outside = ((labels < 0) | (labels >= spec.num_classes)) & ~ignored
    if outside.any():
        bad = np.unique(labels[outside])[:10].tolist()
        raise FolderFileError(
            path,
            INVALID_LABEL_IDS,
            f"contains label ids {bad} outside 0..{spec.num_classes - 1} (the {spec.num_classes} "
            f"`classes:` of dataset.yaml) that are not the ignore index {spec.ignore_index}; "
            "fix the labels, add the missing classes, or set `ignore_index`",
        )
    labels[ignored] = IGNORE_INDEX
    return labels


def _read_depth(path: Path, spec: FolderSpec) -> np.ndarray:
    if path.suffix == ".npy":
        depth = _read_npy(path)
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise FolderFileError(
                path,
                WRONG_FORMAT,
                f"is {_describe(depth)}; depth .npy files hold one float (metres) per pixel, HxW",
            )
        depth = depth.astype(np.float32)
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    raw = _read_pil(path, "depth")
    if raw.ndim != 2 or raw.dtype.itemsize < 2:
        raise FolderFileError(
            path,
            WRONG_FORMAT,
            f"is {_describe(raw)}, not a 16-bit single-channel PNG; an 8-bit PNG cannot hold "
            "depth: save 16-bit units (e.g. millimetres) or metres as .npy",
        )
    if spec.depth_scale is None:
        raise FolderFileError(
            path,
            WRONG_FORMAT,
            f"depth PNGs store units, but {spec.path.name} has no `depth_scale`; add the "
            "metres per unit (e.g. `depth_scale: 0.001` for millimetres)",
        )
    return (raw.astype(np.float32) * np.float32(spec.depth_scale)).astype(np.float32)


def _read_normal(path: Path, spec: FolderSpec) -> np.ndarray:
    if path.suffix == ".npy":
        normal = _read_npy(path)
        if (
            normal.ndim != 3
            or normal.shape[-1] != 3
            or not np.issubdtype(normal.dtype, np.floating)
        ):
            raise FolderFileError(
                path,
                WRONG_FORMAT,
                f"is {_describe(normal)} of shape {normal.shape}; normal .npy files are HxWx3 "
                "float unit vectors",
            )
        normal = np.where(np.isfinite(normal), normal, 0.0).astype(np.float32)
        length = np.linalg.norm(normal, axis=-1)
        valid = length > 0
        wrong = valid & (np.abs(length - 1.0) > NORMAL_LENGTH_TOLERANCE)
        if wrong.any():
            row, col = np.argwhere(wrong)[0]
            raise FolderFileError(
                path,
                INVALID_VALUES,
                f"{int(wrong.sum())} normals are not unit vectors (length {length[row, col]:.3f} "
                f"at row {row}, column {col}); store unit vectors in [-1, 1] (all zeros where "
                "there is no normal), or the (n + 1) / 2 * 255 encoding as an RGB PNG",
            )
    else:
        raw = _read_pil(path, "normal")
        if raw.ndim != 3 or raw.shape[-1] != 3 or raw.dtype != np.uint8:
            raise FolderFileError(
                path,
                WRONG_FORMAT,
                f"is {_describe(raw)}; normal PNGs are 8-bit RGB storing (n + 1) / 2 * 255",
            )
        valid = raw.any(axis=-1)
        normal = raw.astype(np.float32) / 127.5 - 1.0
        length = np.linalg.norm(normal, axis=-1)
        valid &= length > 0
    # Re-normalised: 8-bit rounding (and float rounding) leaves them slightly off unit length.
    normal = normal / np.where(valid, length, 1.0)[..., None]
    return np.where(valid[..., None], normal, 0.0).astype(np.float32)


def _read_pil(path: Path, what: str, convert: str | None = None) -> np.ndarray:
    if not path.is_file():
        raise FolderFileError(path, MISSING_FILE, f"missing {what} file")
    try:
        with Image.open(path) as image:
            image.load()
            if convert is not None and image.mode != convert:
                image = image.convert(convert)
            array = np.array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise FolderFileError(
            path, CORRUPT_PNG, f"cannot be decoded ({error}); the file is corrupt: rewrite it"
        ) from error
    return array


def _read_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FolderFileError(path, MISSING_FILE, "missing target file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise FolderFileError(
            path, CORRUPT_PNG, f"cannot be read as .npy ({error}); rewrite it with numpy.save"
        ) from error


def _describe(array: np.ndarray) -> str:
    channels = 1 if array.ndim == 2 else array.shape[-1]
    return f"{channels}-channel {array.dtype}"
