"""Which images a role of a data module serves, so that two roles can be compared.

A data module answers ``split_files(role)`` for ``train``, ``val`` (what selection scores
on) and ``test`` (what is reported) with the resolved image files, or, where they do not
exist yet (synthetic data generated at the first fit, a root mounted only on the cluster),
with the resolved folder alone. Two roles leak into each other when they share an image;
comparing names (``val`` against ``test``) would miss CityScapes' ``test`` that evaluates
``val``, and a user's folder whose split files list the same stems.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SplitFiles:
    """The images one role of a data module serves.

    Attributes:
        role: ``train``, ``val`` or ``test``.
        description: what it is, for messages, e.g. ``val: data/cityscapes/leftImg8bit/val``.
        folder: the resolved folder its images lie in.
        files: the resolved image files; None where they cannot be listed yet.
    """

    role: str
    description: str
    folder: Path
    files: frozenset[Path] | None = None

    def __str__(self) -> str:
        count = "" if self.files is None else f", {len(self.files)} images"
        return f"<{self.description}{count}>"


def resolved_files(paths) -> frozenset[Path]:
    """Absolute, symlink-free paths: the same image reached two ways is one image."""
    return frozenset(Path(path).resolve() for path in paths)


def shared_images(first: SplitFiles, second: SplitFiles) -> str | None:
    """Why two roles serve the same images (None when they do not).

    File lists are compared where both are known; otherwise the folders: a folder whose
    files cannot be listed yet is assumed to be wholly shared when it is the same folder.
    """
    if first.files is not None and second.files is not None:
        both = first.files & second.files
        if not both:
            return None
        example = sorted(both)[0]
        return f"{len(both)} image(s) are in both, e.g. {example}"
    if first.folder == second.folder:
        return f"both read {first.folder}"
    return None
