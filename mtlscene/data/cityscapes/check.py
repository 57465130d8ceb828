"""Scan a CityScapes root and report every problem at once, before any training starts.

The dataset class fails on the first bad file it meets; this check decodes every file of
every frame and lists all problems grouped by kind, so a broken download is fixed in one go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mtlscene.data.cityscapes.encoding import instance_label_mismatches, invalid_label_ids
from mtlscene.data.cityscapes.layout import IMAGE_SUFFIX, SampleFiles, find_samples
from mtlscene.data.io import DatasetFileError, read_camera, read_png

MISSING_ROOT = "missing root"
EMPTY_SPLIT = "empty split"
MISSING_FILE = "missing file"
CORRUPT_PNG = "corrupt PNG"
WRONG_FORMAT = "wrong PNG format"
SIZE_MISMATCH = "size mismatch"
INVALID_LABEL_IDS = "invalid label ids"
INSTANCE_MISMATCH = "instance/label mismatch"
BAD_CAMERA = "unreadable camera"
KINDS: tuple[str, ...] = (
    MISSING_ROOT,
    EMPTY_SPLIT,
    MISSING_FILE,
    CORRUPT_PNG,
    WRONG_FORMAT,
    SIZE_MISMATCH,
    INVALID_LABEL_IDS,
    INSTANCE_MISMATCH,
    BAD_CAMERA,
)
"""Every problem kind, in the order the report lists them."""

_PACKAGES = {
    "labelIds": "gtFine_trainvaltest.zip",
    "instanceIds": "gtFine_trainvaltest.zip",
    "disparity": "disparity_trainvaltest.zip",
    "camera": "camera_trainvaltest.zip",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        path: the offending file or folder.
        kind: one of `KINDS`.
        message: what is wrong and what to do about it.
    """

    path: Path
    kind: str
    message: str


@dataclass
class DatasetReport:
    """Everything `check_dataset` found.

    Attributes:
        root: the dataset root that was checked.
        problems: every problem, in the order found.
        frames_checked: number of frames scanned per split.
        dataset: what kind of dataset was checked (the report's first line names it).
    """

    root: Path
    problems: list[Problem] = field(default_factory=list)
    frames_checked: dict[str, int] = field(default_factory=dict)
    dataset: str = "CityScapes"

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self, max_per_kind: int | None = None) -> str:
        """A readable multi-line report, problems grouped by kind.

        Args:
            max_per_kind: list at most this many problems of each kind (None: all).
        """
        frames = ", ".join(f"{n} {split}" for split, n in self.frames_checked.items()) or "none"
        lines = [f"{self.dataset} check of {self.root}", f"frames checked: {frames}"]
        if self.ok:
            lines.append("no problems found")
            return "\n".join(lines)
        lines.append(f"{len(self.problems)} problem(s) found:")
        for kind in sorted({p.kind for p in self.problems}, key=_kind_order):
            found = [p for p in self.problems if p.kind == kind]
            lines.append(f"\n{kind} ({len(found)}):")
            shown = found if max_per_kind is None else found[:max_per_kind]
            for problem in shown:
                lines.append(f"  {self._display(problem.path)}")
                lines.append(f"      {problem.message}")
            if len(shown) < len(found):
                lines.append(f"  ... and {len(found) - len(shown)} more")
        return "\n".join(lines)

    def _display(self, path: Path) -> str:
        # Paths relative to the root (named in the header) keep the lines short.
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def check_dataset(
    root: str | Path,
    splits: Iterable[str] = ("train", "val", "test"),
    progress: bool = True,
) -> DatasetReport:
    """Check a CityScapes root file by file, collecting every problem instead of stopping.

    Each frame's left image, labelIds, instanceIds, disparity and camera files are looked up,
    decoded fully and cross-checked (sizes, label ids in the official table, instanceIds
    agreeing with labelIds, 16-bit disparity, camera JSON with baseline and fx).

    Args:
        root: folder holding leftImg8bit/, gtFine/, disparity/ and camera/.
        splits: splits to check.
        progress: show a tqdm progress bar over the frames.

    Returns:
        The report; ``report.ok`` is True when nothing is wrong.
    """
    root = Path(root)
    report = DatasetReport(root=root)
    if not root.is_dir():
        report.problems.append(
            Problem(
                root,
                MISSING_ROOT,
                "the dataset root does not exist; pass the folder holding leftImg8bit/, gtFine/, "
                "disparity/ and camera/ (or create synthetic data with `mtlscene-data generate`)",
            )
        )
        return report
    for split in splits:
        try:
            samples = find_samples(root, split)
        except FileNotFoundError:
            report.frames_checked[split] = 0
            report.problems.append(
                Problem(
                    root / "leftImg8bit" / split,
                    EMPTY_SPLIT,
                    f"no images for split {split!r} (nothing matches <city>/*{IMAGE_SUFFIX}); "
                    "unpack leftImg8bit_trainvaltest.zip into the root or leave the split out",
                )
            )
            continue
        for sample in tqdm(samples, desc=f"checking {split}", unit="frame", disable=not progress):
            report.problems.extend(check_frame(sample))
        report.frames_checked[split] = len(samples)
    return report


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


def _kind_order(kind: str) -> tuple[int, str]:
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), kind)
