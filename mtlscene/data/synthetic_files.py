"""The folder of a generated dataset: its completion marker, its clearing, and generating it once.

A generator writes ``{root}/{marker_name}`` with its settings and ``"complete": false``
before the first file and ``true`` after the last, so an interrupted run is told apart from a
finished one, and a finished one made with the same settings is reused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from mtlscene.filelock import exclusive_lock


def write_json(path: Path, content: dict) -> None:
    """Write ``content`` as indented, sorted JSON, atomically (readers never see half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(content, indent=4, sort_keys=True) + "\n")
    os.replace(tmp, path)


def prepare_root(
    root: str | Path,
    seed: int,
    splits: Mapping[str, int],
    folders: Iterable[str],
    marker_name: str,
    what: str,
) -> Path:
    """Check the settings, create ``root`` and clear a previous generated dataset's folders;
    refuse to write into anything else.

    Args:
        root: the output folder (created if needed).
        seed: the base seed (non-negative).
        splits: images per split name (non-negative).
        folders: the top-level folders a generated dataset has.
        marker_name: the marker file that tells a generated dataset from real data.
        what: the dataset's name in the refusal ("synthetic NYUv2 dataset").

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: a negative seed or split size.
        FileExistsError: ``root`` holds such folders but no marker (real data).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if any(int(n) < 0 for n in splits.values()):
        raise ValueError(f"split sizes must be non-negative, got {dict(splits)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    present = [root / name for name in dict.fromkeys(folders) if (root / name).exists()]
    if not present:
        return root
    if not (root / marker_name).is_file():
        raise FileExistsError(
            f"{root} already holds {', '.join(p.name + '/' for p in present)} but no "
            f"{marker_name}: it looks like real data; choose an empty folder for the {what}"
        )
    for path in present:
        shutil.rmtree(path)
    return root


@contextmanager
def marked_complete(root: Path, marker_name: str, marker: dict) -> Iterator[None]:
    """Mark ``root`` incomplete while the body writes its files, complete when it returns."""
    write_json(root / marker_name, {**marker, "complete": False})
    yield
    write_json(root / marker_name, {**marker, "complete": True})


def is_marked_complete(root: str | Path, marker_name: str, marker: dict) -> bool:
    """Whether ``root`` holds a finished dataset generated with exactly these settings."""
    try:
        found = json.loads((Path(root) / marker_name).read_text())
    except (OSError, ValueError):
        return False
    return found == {**marker, "complete": True}


def generate_once(
    root: str | Path, complete: Callable[[], bool], generate: Callable[[], object]
) -> Path:
    """Run ``generate`` unless ``complete()``, safely across processes; returns ``root``.

    Processes that start together (parallel experiment runs, separate jobs on one node)
    would otherwise each find the dataset missing and clear each other's files; here one
    generates while the others wait on a lock beside ``root``, then find it complete.
    """
    root = Path(root)
    with exclusive_lock(root.parent / f".{root.name}.lock"):
        if not complete():
            generate()
    return root
