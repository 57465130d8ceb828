"""``dataset.yaml``: the description of a user's own folder dataset, read and checked.

A folder dataset is ``root/images/`` plus one folder per target with the same file stems,
and a ``dataset.yaml`` at the root such as::

    classes: [background, box, ball]    # class id = position in the list
    ignore_index: 255                   # value in the label files that means "not labelled"
    depth_scale: 0.001                  # metres per unit of the 16-bit depth PNGs (mm here)
    targets:                            # batch key: folder under root
      semantic: labels
      depth: depth
      normal: normals
    splits:                             # split: text file under root, one stem per line
      train: train.txt
      val: val.txt

The full description (file formats, invalid pixels) is docs/datasets/own_data.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.data.io import DatasetFileError, MissingDatasetError

SPEC_NAME = "dataset.yaml"
IMAGES_FOLDER = "images"
DOCS = "docs/datasets/own_data.md"

TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "semantic": ("semantic",),
    "depth": ("depth", "depth_mask"),
    "normal": ("normal", "normal_mask"),
}
"""Each target a folder can feed, and the batch keys it adds (the heads read these)."""

_KEYS = ("classes", "ignore_index", "depth_scale", "targets", "splits")


class DatasetSpecError(DatasetFileError):
    """``dataset.yaml`` is missing, unreadable or inconsistent; the message names the key."""


@dataclass(frozen=True)
class FolderSpec:
    """The parsed ``dataset.yaml`` of a folder dataset.

    Attributes:
        root: the dataset folder (holding ``dataset.yaml`` and ``images/``).
        targets: batch key ("semantic", "depth", "normal") -> its folder under ``root``.
        splits: split name -> the text file under ``root`` listing its stems.
        classes: class names in id order (empty when there is no semantic target).
        ignore_index: the label files' value for unlabelled pixels (mapped to 255 on load).
        depth_scale: metres per unit of 16-bit depth PNGs; None when not given (then only
            ``.npy`` depth in metres can be read).
    """

    root: Path
    targets: dict[str, Path]
    splits: dict[str, Path]
    classes: tuple[str, ...] = ()
    ignore_index: int = IGNORE_INDEX
    depth_scale: float | None = None

    @property
    def path(self) -> Path:
        """The ``dataset.yaml`` file."""
        return self.root / SPEC_NAME

    @property
    def images(self) -> Path:
        """The folder of the input images."""
        return self.root / IMAGES_FOLDER

    @property
    def num_classes(self) -> int:
        """Number of semantic classes (0 without a semantic target)."""
        return len(self.classes)

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """The keys of a labelled batch: image, the targets' keys and the name."""
        keys = ["image"]
        for target in TARGET_KEYS:
            if target in self.targets:
                keys += TARGET_KEYS[target]
        return (*keys, "name")

    def split_file(self, split: str) -> Path:
        """The stem list of ``split``; an error naming the splits the YAML defines."""
        if split not in self.splits:
            raise DatasetSpecError(
                f"{self.path} defines no split {split!r} (it defines {sorted(self.splits)}); "
                f"add `{split}: {split}.txt` under `splits:` (a text file of image stems, one "
                "per line) or pick a defined split"
            )
        return self.splits[split]


def is_folder_dataset(root: str | Path) -> bool:
    """Whether ``root`` holds a ``dataset.yaml`` (a folder dataset, not CityScapes)."""
    return (Path(root) / SPEC_NAME).is_file()


def read_spec(root: str | Path) -> FolderSpec:
    """Read and check ``root/dataset.yaml``.

    Raises:
        MissingDatasetError: the root or its ``dataset.yaml`` does not exist.
        DatasetSpecError: an unknown or ill-typed key, a target folder or split file that
            does not exist, or an ignore index that is also a class id.
    """
    root = Path(root)
    path = root / SPEC_NAME
    if not root.is_dir():
        raise MissingDatasetError(f"dataset root {root} does not exist; see {DOCS}")
    if not path.is_file():
        raise MissingDatasetError(
            f"no {SPEC_NAME} in {root}: a folder dataset needs one naming its classes, targets "
            f"and splits, e.g. `targets: {{semantic: labels}}`, `classes: [a, b]`, "
            f"`splits: {{train: train.txt, val: val.txt}}`; see {DOCS}"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise DatasetSpecError(f"cannot read {path} ({error}); fix the YAML syntax") from error
    if not isinstance(raw, Mapping):
        raise DatasetSpecError(f"{path} must be a YAML mapping of {list(_KEYS)}")
    _reject_unknown(path, raw, _KEYS, "key")

    targets = _mapping(path, raw, "targets")
    _reject_unknown(path, targets, tuple(TARGET_KEYS), "target under `targets:`")
    if not targets:
        raise DatasetSpecError(
            f"{path}: `targets:` is empty; map at least one of {list(TARGET_KEYS)} to its folder"
        )
    target_folders = {
        key: _existing(path, root, f"targets.{key}", v, True) for key, v in targets.items()
    }

    splits = _mapping(path, raw, "splits")
    if not splits:
        raise DatasetSpecError(
            f"{path}: `splits:` is empty; name at least one, e.g. `train: train.txt`"
        )
    split_files = {
        str(s): _existing(path, root, f"splits.{s}", v, False) for s, v in splits.items()
    }

    classes = raw.get("classes")
    if "semantic" in targets:
        if not isinstance(classes, list) or not classes:
            raise DatasetSpecError(
                f"{path}: a semantic target needs `classes:`, the list of class names in id "
                "order (id 0 first), e.g. `classes: [background, car]`"
            )
        if len(classes) > IGNORE_INDEX:
            raise DatasetSpecError(
                f"{path}: {len(classes)} classes, but at most {IGNORE_INDEX} are supported "
                f"(id {IGNORE_INDEX} marks ignored pixels in a batch)"
            )
    elif classes is not None:
        raise DatasetSpecError(
            f"{path}: `classes:` is given but `targets:` has no `semantic` folder; add "
            "`semantic: <label folder>` under `targets:` or remove `classes:`"
        )
    classes = tuple(str(name) for name in classes or ())

    ignore_index = raw.get("ignore_index", IGNORE_INDEX)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise DatasetSpecError(f"{path}: `ignore_index` must be an integer, got {ignore_index!r}")
    if 0 <= ignore_index < len(classes):
        raise DatasetSpecError(
            f"{path}: `ignore_index: {ignore_index}` is also the id of class "
            f"{classes[ignore_index]!r} (ids 0..{len(classes) - 1}); use a value outside the "
            "class ids (255 is usual)"
        )

    depth_scale = raw.get("depth_scale")
    if depth_scale is not None:
        if isinstance(depth_scale, bool) or not isinstance(depth_scale, int | float):
            raise DatasetSpecError(
                f"{path}: `depth_scale` must be a number (metres per PNG unit, e.g. 0.001 for "
                f"millimetres), got {depth_scale!r}"
            )
        if depth_scale <= 0:
            raise DatasetSpecError(f"{path}: `depth_scale` must be positive, got {depth_scale}")
        depth_scale = float(depth_scale)

    return FolderSpec(
        root=root,
        targets=target_folders,
        splits=split_files,
        classes=classes,
        ignore_index=int(ignore_index),
        depth_scale=depth_scale,
    )


def _reject_unknown(path: Path, raw: Mapping, known: tuple[str, ...], what: str) -> None:
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DatasetSpecError(
                f"{path}: unknown {what} {key!r}; {hint}known: {list(known)} (see {DOCS})"
            )


def _mapping(path: Path, raw: Mapping, key: str) -> Mapping:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        example = "{semantic: labels, depth: depth}" if key == "targets" else "{train: train.txt}"
        raise DatasetSpecError(f"{path}: `{key}` must be a mapping such as `{key}: {example}`")
    return value


def _existing(spec: Path, root: Path, key: str, value: Any, folder: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise DatasetSpecError(f"{spec}: `{key}` must be a path relative to {root}, got {value!r}")
    path = root / value
    if folder and not path.is_dir():
        raise DatasetSpecError(
            f"{spec}: `{key}: {value}` but there is no folder {path}; create it or fix the name"
        )
    if not folder and not path.is_file():
        raise DatasetSpecError(
            f"{spec}: `{key}: {value}` but there is no file {path}; write the split's image "
            "stems into it, one per line"
        )
    return path
