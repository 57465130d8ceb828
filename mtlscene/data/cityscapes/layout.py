"""The official CityScapes directory layout: which files belong to one image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlscene.data.io import MissingDatasetError

IMAGE_SUFFIX = "_leftImg8bit.png"


@dataclass(frozen=True)
class SampleFiles:
    """The files of one CityScapes frame."""

    stem: str
    image: Path
    label_ids: Path
    instance_ids: Path
    disparity: Path
    camera: Path

    def target_files(self) -> dict[str, Path]:
        return {
            "labelIds": self.label_ids,
            "instanceIds": self.instance_ids,
            "disparity": self.disparity,
            "camera": self.camera,
        }


def sample_files(root: Path, split: str, image: Path) -> SampleFiles:
    """All paths of the frame whose left image is ``image`` (which lies under ``root``)."""
    city = image.parent.name
    stem = image.name[: -len(IMAGE_SUFFIX)]
    gt = root / "gtFine" / split / city
    return SampleFiles(
        stem=stem,
        image=image,
        label_ids=gt / f"{stem}_gtFine_labelIds.png",
        instance_ids=gt / f"{stem}_gtFine_instanceIds.png",
        disparity=root / "disparity" / split / city / f"{stem}_disparity.png",
        camera=root / "camera" / split / city / f"{stem}_camera.json",
    )


def has_images(root: str | Path, split: str) -> bool:
    """True when the split has at least one left image under ``root``."""
    return any((Path(root) / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"))


def find_samples(root: str | Path, split: str) -> list[SampleFiles]:
    """Every frame of a split, sorted; a clear error when the root or split is empty."""
    root = Path(root)
    if not root.is_dir():
        raise MissingDatasetError(
            f"CityScapes root {root} does not exist; set data.root to the folder holding "
            "leftImg8bit/, gtFine/, disparity/ and camera/ (or enable data.synthetic)"
        )
    image_dir = root / "leftImg8bit" / split
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise MissingDatasetError(
            f"no images for split {split!r}: nothing matches "
            f"{image_dir}/<city>/*{IMAGE_SUFFIX}; check data.root and that the "
            "leftImg8bit package is unpacked there"
        )
    return [sample_files(root, split, image) for image in images]
