"""Writes synthetic scenes as a CityScapes-format dataset, marked complete when done."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mtlscene.data.cityscapes.encoding import encode_disparity
from mtlscene.data.cityscapes.labels import label_id_palette
from mtlscene.data.cityscapes.synthetic.disparity_noise import (
    STD_FOLDER,
    STD_SUFFIX,
    DisparityNoise,
    add_disparity_noise,
)
from mtlscene.data.cityscapes.synthetic.renderer import SyntheticScene, generate_scene
from mtlscene.data.procedural import scene_rng
from mtlscene.data.synthetic_files import (
    generate_once,
    is_marked_complete,
    marked_complete,
    prepare_root,
)

GENERATOR_VERSION = 1
"""Bumped whenever the generated content changes, so stale datasets are regenerated."""

MARKER_NAME = "SYNTHETIC.json"
DEFAULT_SPLITS: Mapping[str, int] = MappingProxyType({"train": 64, "val": 16, "test": 16})
DATA_TYPES = ("leftImg8bit", "gtFine", "disparity", "camera", STD_FOLDER)
FRAME = 19


def save_png(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG: uint8 HxW (L), HxWx3 (RGB), HxWx4 (RGBA) or uint16/int32 HxW (16-bit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint8:
        image = Image.fromarray(array)
    elif array.ndim == 2 and np.issubdtype(array.dtype, np.integer):
        if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
            raise ValueError(f"{path}: values outside 0..65535 do not fit a 16-bit PNG")
        image = Image.fromarray(array.astype(np.uint16))
    else:
        raise ValueError(f"{path}: cannot store a {array.dtype} array of shape {array.shape}")
    image.save(path, format="PNG")


def _cities(split: str) -> list[str]:
    name = "".join(ch for ch in split if ch.isalnum()).capitalize() or "Split"
    return [f"synth{name}A", f"synth{name}B"]


def _frame_names(split: str, count: int) -> list[tuple[str, str]]:
    """(city, stem) for every image of a split: two cities, sequence numbers from 0."""
    cities = _cities(split)
    names, seq = [], {}
    for index in range(count):
        city = cities[index * len(cities) // count]
        seq[city] = seq.get(city, -1) + 1
        names.append((city, f"{city}_{seq[city]:06d}_{FRAME:06d}"))
    return names


def _marker(
    splits: Mapping[str, int],
    height: int,
    width: int,
    seed: int,
    disparity_noise: DisparityNoise | None = None,
) -> dict:
    marker = {
        "generator": "mtlscene.data.cityscapes.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "splits": {str(k): int(v) for k, v in splits.items()},
        "height": int(height),
        "width": int(width),
    }
    if disparity_noise is not None:  # absent otherwise: clean datasets keep their marker
        marker["disparity_noise"] = disparity_noise.as_dict()
    return marker


def write_scene(root: Path, split: str, city: str, stem: str, scene: SyntheticScene) -> None:
    """Write one scene's five CityScapes files (plus the colour PNG) under ``root``."""
    gt = root / "gtFine" / split / city
    save_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", scene.image)
    save_png(gt / f"{stem}_gtFine_labelIds.png", scene.label_ids)
    save_png(gt / f"{stem}_gtFine_instanceIds.png", scene.instance_ids)
    colour = np.concatenate(
        [label_id_palette()[scene.label_ids], np.full(scene.label_ids.shape + (1,), 255, np.uint8)],
        axis=-1,
    )
    save_png(gt / f"{stem}_gtFine_color.png", colour)
    save_png(
        root / "disparity" / split / city / f"{stem}_disparity.png",
        encode_disparity(scene.disparity, scene.disparity_valid),
    )
    if scene.disparity_std is not None:
        save_png(
            root / STD_FOLDER / split / city / f"{stem}{STD_SUFFIX}",
            encode_disparity(scene.disparity_std, scene.disparity_valid),
        )
    camera = root / "camera" / split / city / f"{stem}_camera.json"
    camera.parent.mkdir(parents=True, exist_ok=True)
    camera.write_text(json.dumps(scene.camera, indent=4, sort_keys=True) + "\n")


def generate_dataset(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    progress: bool = True,
    disparity_noise: DisparityNoise | None = None,
) -> Path:
    """Generate a synthetic CityScapes-format dataset under ``root``.

    Deterministic: the same arguments give byte-identical files, and every image has its own
    random stream derived from ``(seed, split, index)``, so changing one split's size leaves
    the images of the others unchanged. ``{root}/SYNTHETIC.json`` is marked complete only after
    the last file is written, so an interrupted run is detected by `is_complete`; a
    previous synthetic dataset in ``root`` is replaced.

    Args:
        root: output folder (created if needed).
        splits: images per split name.
        height: image rows.
        width: image columns.
        seed: non-negative base seed.
        progress: show a tqdm progress bar.
        disparity_noise: add stereo-like noise of known per-pixel std to the disparity and
            write that std under ``disparity_std/`` (see
            `mtlscene.data.cityscapes.synthetic.disparity_noise`); None (default): exact disparity.

    Returns:
        ``root`` as a Path.
    """
    root = prepare_root(root, seed, splits, DATA_TYPES, MARKER_NAME, "synthetic dataset")
    marker = _marker(splits, height, width, seed, disparity_noise)
    total = sum(int(n) for n in splits.values())
    with (
        marked_complete(root, MARKER_NAME, marker),
        tqdm(total=total, desc="synthetic CityScapes", unit="img", disable=not progress) as bar,
    ):
        for split, count in splits.items():
            for index, (city, stem) in enumerate(_frame_names(split, int(count))):
                rng = scene_rng(seed, split, index)
                scene = generate_scene(rng, height, width)
                if disparity_noise is not None:  # drawn after the scene: same images, labels
                    camera = scene.camera
                    focal_baseline = camera["intrinsic"]["fx"] * camera["extrinsic"]["baseline"]
                    scene.disparity, scene.disparity_std = add_disparity_noise(
                        rng,
                        scene.image,
                        scene.disparity,
                        scene.disparity_valid,
                        focal_baseline,
                        disparity_noise,
                    )
                write_scene(root, split, city, stem, scene)
                bar.update(1)
    return root


def is_complete(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    disparity_noise: DisparityNoise | None = None,
) -> bool:
    """True when ``root`` holds a finished synthetic dataset made with these parameters."""
    return is_marked_complete(
        root, MARKER_NAME, _marker(splits, height, width, seed, disparity_noise)
    )


def ensure_dataset(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    progress: bool = True,
    disparity_noise: DisparityNoise | None = None,
) -> Path:
    """Generate the dataset unless ``root`` already holds it, safely across processes.

    Processes that start together (parallel experiment runs, separate jobs on one node)
    would otherwise each find the dataset missing and clear each other's files; here one
    generates while the others wait on a lock beside ``root``, then find it complete.
    """
    return generate_once(
        root,
        lambda: is_complete(root, splits, height, width, seed, disparity_noise),
        lambda: generate_dataset(root, splits, height, width, seed, progress, disparity_noise),
    )
