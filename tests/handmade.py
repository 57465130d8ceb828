"""A tiny hand-made CityScapes-format frame whose targets can be computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

STEM = "handcity_000000_000001"
HEIGHT, WIDTH = 8, 12
FX, BASELINE = 100.0, 0.2


def label_ids() -> np.ndarray:
    labels = np.full((HEIGHT, WIDTH), 7, dtype=np.uint8)  # road (trainId 0)
    labels[:2] = 23  # sky (trainId 10)
    labels[2, :] = 0  # unlabeled (void -> 255)
    labels[3, :2] = 9  # parking: a real class that is ignored in evaluation (-> 255)
    labels[4:8, 0:4] = 26  # car (trainId 13)
    labels[4:6, 6:8] = 24  # person (trainId 11)
    labels[6:8, 8:12] = 24  # a group of persons (no individual instance)
    return labels


def instance_ids() -> np.ndarray:
    ids = label_ids().astype(np.int32)
    ids[4:8, 0:4] = 26000  # car instance 0
    ids[4:6, 6:8] = 24000  # person instance 0
    ids[6:8, 8:12] = 24  # group region: plain labelId below 1000
    return ids


def disparity_png() -> np.ndarray:
    raw = np.full((HEIGHT, WIDTH), 1 + 256 * 4, dtype=np.uint16)  # d = 4 px
    raw[:2] = 0  # sky: invalid
    raw[7, 11] = 1  # p = 1: valid, d = 0
    return raw


def write_frame(root: Path, split: str = "val", city: str = "handcity") -> Path:
    """Write one frame in the official layout and return the dataset root."""
    rgb = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    folders = {
        "leftImg8bit": f"{STEM}_leftImg8bit.png",
        "gtFine": None,
        "disparity": f"{STEM}_disparity.png",
        "camera": f"{STEM}_camera.json",
    }
    for folder in folders:
        (root / folder / split / city).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(root / "leftImg8bit" / split / city / folders["leftImg8bit"])
    gt = root / "gtFine" / split / city
    Image.fromarray(label_ids()).save(gt / f"{STEM}_gtFine_labelIds.png")
    Image.fromarray(instance_ids().astype(np.uint16)).save(gt / f"{STEM}_gtFine_instanceIds.png")
    Image.fromarray(disparity_png()).save(root / "disparity" / split / city / folders["disparity"])
    camera = {"extrinsic": {"baseline": BASELINE}, "intrinsic": {"fx": FX, "fy": FX}}
    (root / "camera" / split / city / folders["camera"]).write_text(json.dumps(camera))
    return root
