"""The one check interface of every dataset: its problems, its report, and the remembered check.

A dataset plugs in with a `DatasetChecker`: which roots it claims (``detect``), the frames of
a split (``frames``), the files of a frame (``paths``) and what is wrong with a frame
(``problems``). From those four, `DatasetChecker.report` lists every problem of a root (what
``mtlscene-data check`` prints) and `DatasetChecker.check_before_use` checks the splits a run
uses before its first step, remembering a pass: the next run only stats the files
(`check_once`: their names, sizes and modification times in ``{cache_dir}/checked/{split}.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from tqdm.auto import tqdm

from mtlscene.data.io import DatasetFileError

MISSING_ROOT = "missing root"
EMPTY_SPLIT = "empty split"
MISSING_FILE = "missing file"
CORRUPT_PNG = "corrupt PNG"
WRONG_FORMAT = "wrong PNG format"
SIZE_MISMATCH = "size mismatch"
INVALID_LABEL_IDS = "invalid label ids"
KINDS: tuple[str, ...] = (
    MISSING_ROOT,
    EMPTY_SPLIT,
    MISSING_FILE,
    CORRUPT_PNG,
    WRONG_FORMAT,
    SIZE_MISMATCH,
    INVALID_LABEL_IDS,
)
"""The problem kinds several datasets share, in the order a report lists them (a dataset's own
kinds follow, in the order of its checker's ``kinds``)."""

MAX_LISTED = 5  # problems listed per kind in a run's error; `mtlscene-data check` lists all
F = TypeVar("F")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        path: the offending file or folder.
        kind: one of `KINDS` or a dataset's own kinds.
        message: what is wrong and what to do about it.
    """

    path: Path
    kind: str
    message: str


@dataclass
class DatasetReport:
    """Everything a check found.

    Attributes:
        root: the dataset root that was checked.
        problems: every problem, in the order found.
        frames_checked: number of frames scanned per split.
        dataset: what kind of dataset was checked (the report's first line names it).
        kinds: the order in which problem kinds are listed (others follow by name).
    """

    root: Path
    problems: list[Problem] = field(default_factory=list)
    frames_checked: dict[str, int] = field(default_factory=dict)
    dataset: str = "Dataset"
    kinds: tuple[str, ...] = KINDS

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
        for kind in sorted({p.kind for p in self.problems}, key=self._kind_order):
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

    def _kind_order(self, kind: str) -> tuple[int, str]:
        return (self.kinds.index(kind) if kind in self.kinds else len(self.kinds), kind)


class DatasetChecker(ABC, Generic[F]):
    """How one kind of dataset is checked; one instance per dataset root.

    A subclass names itself (``name``, the key of `mtlscene.data.checkers.CHECKERS`; ``title``,
    the report's first word) and provides the four parts: `detect`, `frames`, `paths` and
    `problems`. `quick_problems` may read less than `problems` for the check before training
    (CityScapes reads PNG headers there); by default it is `problems`.

    Args:
        root: the dataset root.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    """Splits ``mtlscene-data check`` checks when none are given."""
    root_hint: ClassVar[str] = "pass the dataset's root folder"
    """What the root must hold, said when it does not exist."""
    kinds: ClassVar[tuple[str, ...]] = KINDS
    unit: ClassVar[str] = "frame"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    @abstractmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` holds this kind of dataset (looked at by name only, nothing read)."""

    @abstractmethod
    def frames(self, split: str) -> tuple[Sequence[F], list[Problem]]:
        """The frames of a split, and the problems found while listing them (an empty or
        missing split, files that match no frame)."""

    @abstractmethod
    def paths(self, frame: F) -> Iterable[Path]:
        """The files of a frame (a pass is remembered by their names, sizes and times)."""

    @abstractmethod
    def problems(self, frame: F) -> list[Problem]:
        """Every problem of a frame, every file decoded (empty when it is fine); called from
        threads."""

    def quick_problems(self, frame: F) -> list[Problem]:
        """The problems the check before training looks for (default: `problems`)."""
        return self.problems(frame)

    def default_splits(self) -> Sequence[str]:
        """The splits to check when none are named."""
        return self.splits

    def root_problems(self) -> list[Problem]:
        """What is wrong with the root itself (nothing else is checked then)."""
        if self.root.is_dir():
            return []
        return [
            Problem(self.root, MISSING_ROOT, f"the dataset root does not exist; {self.root_hint}")
        ]

    def report(self, splits: Iterable[str] | None = None, progress: bool = True) -> DatasetReport:
        """Check every frame of the splits, collecting every problem instead of stopping.

        Args:
            splits: splits to check; None: `default_splits`.
            progress: show a tqdm progress bar over the frames.

        Returns:
            The report; ``report.ok`` is True when nothing is wrong.
        """
        report = DatasetReport(root=self.root, dataset=self.title, kinds=self.kinds)
        report.problems += self.root_problems()
        if report.problems:
            return report
        for split in self.default_splits() if splits is None else splits:
            frames, found = self.frames(split)
            report.problems += found
            bar = tqdm(frames, desc=f"checking {split}", unit=self.unit, disable=not progress)
            for frame in bar:
                report.problems += self.problems(frame)
            report.frames_checked[split] = len(frames)
        return report

    def check_once(
        self, split: str, frames: Sequence[F] | None = None, cache_dir: Path | None = None
    ) -> bool:
        """`check_once` with this dataset's `paths` and `quick_problems`.

        Args:
            split: the split's name.
            frames: its frames, when the dataset listed them already; None lists them with
                `frames` (and counts what that finds as problems).
            cache_dir: where the record of passed checks lives (None: not remembered).

        Returns:
            True when the check ran, False when a remembered pass made it unnecessary.
        """
        found: list[Problem] = []
        if frames is None:
            frames, found = self.frames(split)
        return check_once(
            self.root,
            split,
            frames,
            self.paths,
            self.quick_problems,
            cache_dir,
            found=found,
            dataset=self.title,
            kinds=self.kinds,
        )

    def check_before_use(
        self, splits: Mapping[str, Sequence[F] | None], cache_dir: Path | None
    ) -> None:
        """`check_once` on every split a run uses, raising once with all their problems.

        Args:
            splits: split name -> its frames (None: listed by `frames`).
            cache_dir: where the record of passed checks lives (None: not remembered).
        """
        check_splits(splits, lambda split, frames: self.check_once(split, frames, cache_dir))


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
    frames: Sequence[F],
    paths: Callable[[F], Iterable[Path]],
    problems_of: Callable[[F], list[Problem]],
    cache_dir: Path | None,
    *,
    found: Sequence[Problem] = (),
    dataset: str = "Dataset",
    kinds: tuple[str, ...] = KINDS,
) -> bool:
    """Check every frame of a split unless an identical set of files passed before.

    Args:
        root: the dataset root (named in the error).
        split: the split's name.
        frames: the split's frames (any per-frame description).
        paths: a frame's files (their names, sizes and times are remembered).
        problems_of: a frame's problems (empty when it is fine); called from threads.
        cache_dir: where the record of passed checks lives (None: not remembered).
        found: problems found while listing the frames (they fail the check).
        dataset: the kind of dataset, named in the error's report.
        kinds: the order in which the error lists problem kinds.

    Returns:
        True when the check ran, False when a remembered pass made it unnecessary.

    Raises:
        DatasetFileError: listing the problems, with the command that lists them all.
    """
    record = None if cache_dir is None else Path(cache_dir) / "checked" / f"{split}.json"
    digest = fingerprint(path for frame in frames for path in paths(frame))
    if record is not None and not found and _remembered(record) == digest:
        return False
    report = _FullPaths(
        root=Path(root), frames_checked={split: len(frames)}, dataset=dataset, kinds=kinds
    )
    report.problems += found
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
    splits: Mapping[str, Sequence[F] | None], check: Callable[[str, Sequence[F] | None], bool]
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
