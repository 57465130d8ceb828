"""CityScapes through the one check interface: its roots, frames, files and problems."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mtlscene.data.cityscapes.check import KINDS, check_frame
from mtlscene.data.cityscapes.layout import IMAGE_SUFFIX, SampleFiles, find_samples
from mtlscene.data.cityscapes.preflight import frame_problems
from mtlscene.data.report import EMPTY_SPLIT, DatasetChecker, DatasetReport, Problem


class CityscapesChecker(DatasetChecker[SampleFiles]):
    """A CityScapes root (``leftImg8bit/``, ``gtFine/``, ``disparity/``, ``camera/``).

    `problems` decodes every file of a frame (`mtlscene.data.cityscapes.check`); the check
    before training reads PNG headers instead (`mtlscene.data.cityscapes.preflight`).
    """

    name = "cityscapes"
    title = "CityScapes"
    splits = ("train", "val", "test")
    root_hint = (
        "pass the folder holding leftImg8bit/, gtFine/, disparity/ and camera/ (or create "
        "synthetic data with `mtlscene-data generate`)"
    )
    kinds = KINDS

    @staticmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` has a ``leftImg8bit/`` folder."""
        return (Path(root) / "leftImg8bit").is_dir()

    def frames(self, split: str) -> tuple[Sequence[SampleFiles], list[Problem]]:
        try:
            return find_samples(self.root, split), []
        except FileNotFoundError:
            return [], [
                Problem(
                    self.root / "leftImg8bit" / split,
                    EMPTY_SPLIT,
                    f"no images for split {split!r} (nothing matches <city>/*{IMAGE_SUFFIX}); "
                    "unpack leftImg8bit_trainvaltest.zip into the root or leave the split out",
                )
            ]

    def paths(self, frame: SampleFiles) -> Iterable[Path]:
        return (frame.image, *frame.target_files().values())

    def problems(self, frame: SampleFiles) -> list[Problem]:
        return check_frame(frame)

    def quick_problems(self, frame: SampleFiles) -> list[Problem]:
        return frame_problems(frame)


def check_dataset(
    root: str | Path,
    splits: Iterable[str] = CityscapesChecker.splits,
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
    return CityscapesChecker(root).report(splits, progress)
