"""Check a folder dataset (``dataset.yaml`` + ``images/`` + target folders) file by file.

The same readers as the dataset (`mtlscene.data.folder.files`) decode every file of
every split, so the messages are the ones training would stop with; here all of them are
collected into one `DatasetReport` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from mtlscene.data.cityscapes.check import EMPTY_SPLIT, MISSING_ROOT, DatasetReport, Problem
from mtlscene.data.folder.files import (
    FolderFileError,
    FolderSample,
    find_samples,
    read_image,
    read_stems,
    read_target,
)
from mtlscene.data.folder.spec import SPEC_NAME, DatasetSpecError, FolderSpec, read_spec
from mtlscene.data.io import MissingDatasetError

BAD_SPEC = f"bad {SPEC_NAME}"


def check_folder_dataset(
    root: str | Path, splits: Iterable[str] | None = None, progress: bool = True
) -> DatasetReport:
    """Check a folder dataset, collecting every problem instead of stopping at the first.

    Args:
        root: the folder holding ``dataset.yaml``.
        splits: splits to check; None checks every split the YAML names.
        progress: show a tqdm progress bar over the images.

    Returns:
        The report; ``report.ok`` is True when nothing is wrong.
    """
    root = Path(root)
    report = DatasetReport(root=root, dataset="Folder dataset")
    try:
        spec = read_spec(root)
    except MissingDatasetError as error:
        missing = root if not root.is_dir() else root / SPEC_NAME
        report.problems.append(Problem(missing, MISSING_ROOT, f"{error}"))
        return report
    except DatasetSpecError as error:
        report.problems.append(Problem(root / SPEC_NAME, BAD_SPEC, str(error)))
        return report
    for split in spec.splits if splits is None else splits:
        try:
            samples, problems = find_samples(spec, split)
            if not read_stems(spec, split):
                raise FolderFileError(spec.split_file(split), EMPTY_SPLIT, "lists no image stems")
        except DatasetSpecError as error:  # a split the YAML does not define
            report.frames_checked[split] = 0
            report.problems.append(Problem(root / SPEC_NAME, EMPTY_SPLIT, str(error)))
            continue
        except FolderFileError as error:
            report.frames_checked[split] = 0
            report.problems.append(Problem(error.path, error.kind, error.detail))
            continue
        report.problems += [Problem(p.path, p.kind, p.detail) for p in problems]
        for sample in tqdm(samples, desc=f"checking {split}", unit="image", disable=not progress):
            report.problems += sample_problems(sample, spec)
        report.frames_checked[split] = len(samples)
    return report


def sample_problems(sample: FolderSample, spec: FolderSpec) -> list[Problem]:
    """Every problem of one image and its target files (an empty list when all is fine)."""
    problems: list[Problem] = []
    image_shape = None
    try:
        image_shape = read_image(sample.image).shape[:2]
    except FolderFileError as error:
        problems.append(Problem(error.path, error.kind, error.detail))
    for key, path in sample.targets.items():
        try:
            read_target(key, path, spec, image_shape)
        except FolderFileError as error:
            problems.append(Problem(error.path, error.kind, error.detail))
    return problems
