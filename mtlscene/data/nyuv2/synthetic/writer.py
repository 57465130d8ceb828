"""Writes synthetic indoor scenes as an NYUv2 root in the mtan layout, marked when complete."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
from tqdm.auto import tqdm

from mtlscene.data.nyuv2.layout import NYUV2_SHAPE, NYUV2_SPLITS, frame_path
from mtlscene.data.nyuv2.synthetic.renderer import IndoorScene, generate_indoor_scene
from mtlscene.data.procedural import scene_rng
from mtlscene.data.synthetic_files import (
    generate_once,
    is_marked_complete,
    marked_complete,
    prepare_root,
)

GENERATOR_VERSION = 2
"""Bumped whenever the generated content changes, so stale datasets are regenerated."""

MARKER_NAME = "SYNTHETIC_NYUV2.json"
DEFAULT_SPLITS: Mapping[str, int] = MappingProxyType({"train": 795, "val": 654})
"""NYUv2's own split sizes ("val" holds the 654 test images, as in the mtan files)."""


def write_scene(root: Path, split: str, index: int, scene: IndoorScene) -> None:
    """Write one frame's four .npy files as mtan stores them (float32; depth HxWx1,
    labels as floats with -1 for unlabelled pixels)."""
    arrays = {
        "image": scene.image,
        "label": scene.label.astype(np.float32),
        "depth": scene.depth[..., None],
        "normal": scene.normal,
    }
    for folder, array in arrays.items():
        path = frame_path(root, split, folder, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(array, dtype=np.float32))


def _marker(splits: Mapping[str, int], height: int, width: int, seed: int) -> dict:
    return {
        "generator": "mtlscene.data.nyuv2.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "splits": {str(k): int(v) for k, v in splits.items()},
        "height": int(height),
        "width": int(width),
    }


def generate_dataset(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = NYUV2_SHAPE[0],
    width: int = NYUV2_SHAPE[1],
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate a synthetic NYUv2 root (mtan layout) under ``root``.

    Deterministic: the same arguments give identical files, and every frame has its own
    random stream derived from ``(seed, split, index)``, so changing one split's size leaves
    the other's frames unchanged. ``{root}/SYNTHETIC_NYUV2.json`` is marked complete only
    after the last file is written (`is_complete`); a previous synthetic dataset in
    ``root`` is replaced, a real one is refused.

    Args:
        root: output folder (created if needed).
        splits: frames per split name.
        height: image rows.
        width: image columns.
        seed: non-negative base seed.
        progress: show a tqdm progress bar.

    Returns:
        ``root`` as a Path.
    """
    if height < 2 or width < 2:
        raise ValueError(f"height and width must be at least 2, got {height}x{width}")
    root = prepare_root(
        root, seed, splits, [*NYUV2_SPLITS, *splits], MARKER_NAME, "synthetic NYUv2 dataset"
    )
    marker = _marker(splits, height, width, seed)
    total = sum(int(n) for n in splits.values())
    with (
        marked_complete(root, MARKER_NAME, marker),
        tqdm(total=total, desc="synthetic NYUv2", unit="img", disable=not progress) as bar,
    ):
        for split, count in splits.items():
            for index in range(int(count)):
                scene = generate_indoor_scene(scene_rng(seed, split, index), height, width)
                write_scene(root, split, index, scene)
                bar.update(1)
    return root


def is_complete(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = NYUV2_SHAPE[0],
    width: int = NYUV2_SHAPE[1],
    seed: int = 0,
) -> bool:
    """True when ``root`` holds a finished synthetic NYUv2 dataset made with these settings."""
    return is_marked_complete(root, MARKER_NAME, _marker(splits, height, width, seed))


def ensure_dataset(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = NYUV2_SHAPE[0],
    width: int = NYUV2_SHAPE[1],
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate the dataset unless ``root`` already holds it, safely across processes.

    Processes that start together (parallel experiment runs) would otherwise each find the
    dataset missing and clear each other's files; here one generates while the others wait
    on a lock beside ``root``, then find it complete.
    """
    return generate_once(
        root,
        lambda: is_complete(root, splits, height, width, seed),
        lambda: generate_dataset(root, splits, height, width, seed, progress),
    )
