"""Check a folder dataset (``dataset.yaml`` + ``images/`` + target folders) file by file.

The same readers as the dataset (`mtlscene.data.folder.files`) decode every file of
every split, so the messages are the ones training would stop with; here all of them are
collected into one `mtlscene.data.report.DatasetReport` instead (`FolderChecker`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mtlscene.data.folder.files import (
    FolderFileError,
    FolderSample,
    find_samples,
    read_image,
    read_stems,
    read_target,
)
from mtlscene.data.folder.spec import (
    SPEC_NAME,
    DatasetSpecError,
    FolderSpec,
    is_folder_dataset,
    read_spec,
)
from mtlscene.data.io import MissingDatasetError
from mtlscene.data.report import (
    EMPTY_SPLIT,
    MISSING_ROOT,
    DatasetChecker,
    DatasetReport,
    Problem,
)

BAD_SPEC = f"bad {SPEC_NAME}"


class FolderChecker(DatasetChecker[FolderSample]):
    """A folder dataset: ``dataset.yaml``, ``images/`` and one folder per target.

    Args:
        root: the folder holding ``dataset.yaml``.
        spec: its ``dataset.yaml`` when read already; None reads it (a missing or bad one
            is the root's problem).
    """

    name = "folder"
    title = "Folder dataset"
    splits = ()
    unit = "image"

    def __init__(self, root: str | Path, spec: FolderSpec | None = None) -> None:
        super().__init__(root)
        self._root_problems: list[Problem] = []
        if spec is None:
            try:
                spec = read_spec(self.root)
            except MissingDatasetError as error:
                missing = self.root if not self.root.is_dir() else self.root / SPEC_NAME
                self._root_problems.append(Problem(missing, MISSING_ROOT, f"{error}"))
            except DatasetSpecError as error:
                self._root_problems.append(Problem(self.root / SPEC_NAME, BAD_SPEC, str(error)))
        self.spec = spec

    @staticmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` holds a ``dataset.yaml``."""
        return is_folder_dataset(root)

    def root_problems(self) -> list[Problem]:
        return list(self._root_problems)

    def default_splits(self) -> Sequence[str]:
        """Every split the YAML names."""
        return self.spec.splits

    def frames(self, split: str) -> tuple[Sequence[FolderSample], list[Problem]]:
        """The samples of a split, and the problems of matching files to its stems."""
        try:
            samples, problems = find_samples(self.spec, split)
            if not read_stems(self.spec, split):
                raise FolderFileError(
                    self.spec.split_file(split), EMPTY_SPLIT, "lists no image stems"
                )
        except DatasetSpecError as error:  # a split the YAML does not define
            return [], [Problem(self.root / SPEC_NAME, EMPTY_SPLIT, str(error))]
        except FolderFileError as error:
            return [], [Problem(error.path, error.kind, error.detail)]
        return samples, [Problem(p.path, p.kind, p.detail) for p in problems]

    def paths(self, frame: FolderSample) -> Iterable[Path]:
        return (frame.image, *frame.targets.values())

    def problems(self, frame: FolderSample) -> list[Problem]:
        return sample_problems(frame, self.spec)


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
    return FolderChecker(root).report(splits, progress)


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
