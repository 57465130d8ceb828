"""Reading CityScapes files with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


class DatasetFileError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names it."""


class MissingDatasetError(DatasetFileError, FileNotFoundError):
    """The dataset root or a split's images are missing altogether."""


def read_png(path: Path, mode: str | None = None) -> np.ndarray:
    """Decode a PNG fully (truncated files fail here, not halfway through training)."""
    if not path.is_file():
        raise DatasetFileError(f"missing file {path}: re-extract that CityScapes package")
    try:
        with Image.open(path) as image:
            image.load()
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetFileError(
            f"corrupt or truncated image {path} ({error}); re-download or regenerate it"
        ) from error


def read_camera(path: Path) -> dict:
    """Parse a CityScapes camera JSON and check the fields used for metric depth."""
    if not path.is_file():
        raise DatasetFileError(f"missing file {path}: re-extract the camera package")
    try:
        camera = json.loads(path.read_text())
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetFileError(
            f"unreadable camera file {path} ({type(error).__name__}: {error}); it must be "
            'JSON with "extrinsic": {"baseline": ...} and "intrinsic": {"fx": ...}'
        ) from error
    if baseline <= 0 or fx <= 0:
        raise DatasetFileError(f"camera file {path} has non-positive baseline or fx")
    return camera
