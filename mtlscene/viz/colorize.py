"""Colour images of inputs, targets and predictions for figures and logger panels.

Everything here takes numpy arrays (torch tensors are accepted and moved to the CPU) and returns
``uint8`` HxWx3 RGB images, so the results can be saved with PIL or logged directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import hsv_to_rgb
from PIL import Image, ImageDraw, ImageFont

from mtlscene.data.cityscapes.labels import IGNORE_INDEX, palette

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def _as_numpy(array: Any) -> np.ndarray:
    """A numpy view of a numpy array or (detached, CPU) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def to_uint8_image(image: Any) -> np.ndarray:
    """Convert a float image in [0, 1] (3xHxW tensor/array or HxWx3) to an HxWx3 uint8 image.

    Values outside [0, 1] are clipped. uint8 input is returned as HxWx3 unchanged.
    """
    array = _as_numpy(image)
    if array.ndim != 3:
        raise ValueError(f"expected a 3xHxW or HxWx3 image, got shape {array.shape}")
    if array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    return (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def colorize_semantic(train_ids: Any, label_set: str = "trainid") -> np.ndarray:
    """Colour a map of class indices with the official CityScapes palette.

    Args:
        train_ids: HxW class indices of ``label_set`` (trainIds or categories); 255 (ignore) and
            any other value outside the classes become black.
        label_set: "trainid" (19 classes) or "category" (7).

    Returns:
        HxWx3 uint8 RGB image.
    """
    ids = _as_numpy(train_ids).astype(np.int64)
    colours = palette(label_set)
    num_classes = len(colours) - 1  # the last palette row is the (black) ignore colour
    lut = np.zeros((num_classes + 1, 3), dtype=np.uint8)
    lut[:num_classes] = colours[:num_classes]
    return lut[np.where((ids >= 0) & (ids < num_classes), ids, num_classes)]


def colorize_disparity(
    disparity: Any,
    valid: Any | None = None,
    vmax: float | None = None,
    cmap: str = "magma",
) -> np.ndarray:
    """Colour a disparity (inverse depth) map; near is bright, far is dark.

    Args:
        disparity: HxW disparity in pixels.
        valid: Bool HxW mask of pixels to draw; invalid pixels are black. Defaults to finite ones.
        vmax: Disparity drawn at the top of the colour map (0 is the bottom). Defaults to the 99th
            percentile of the valid pixels, so a few outliers do not wash out the image; pass the
            same value for a target and its prediction to compare them.
        cmap: A matplotlib colour map name.

    Returns:
        HxWx3 uint8 RGB image.
    """
    values = _as_numpy(disparity).astype(np.float64)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    mask = np.isfinite(values)
    if valid is not None:
        mask &= _as_numpy(valid).astype(bool).reshape(values.shape)
    if vmax is None:
        vmax = float(np.percentile(values[mask], 99)) if mask.any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    normalised = np.clip(np.where(mask, values, 0.0) / vmax, 0.0, 1.0)
    rgb = (colormaps[cmap](normalised)[..., :3] * 255.0).round().astype(np.uint8)
    rgb[~mask] = 0
    return rgb


def instance_colour(instance_id: int) -> np.ndarray:
    """A bright RGB colour (uint8, 3) that depends only on the id, so it is stable across images."""
    hue = (int(instance_id) * _GOLDEN_RATIO_CONJUGATE) % 1.0
    return (hsv_to_rgb([hue, 0.75, 1.0]) * 255.0).round().astype(np.uint8)


def instance_boundaries(instance_map: np.ndarray) -> np.ndarray:
    """Bool HxW mask of instance pixels whose 4-neighbourhood holds another id (inner outline)."""
    ids = np.asarray(instance_map)
    padded = np.pad(ids, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = (
        (padded[:-2, 1:-1] != centre)
        | (padded[2:, 1:-1] != centre)
        | (padded[1:-1, :-2] != centre)
        | (padded[1:-1, 2:] != centre)
    )
    return differs & (ids != 0)


def colorize_panoptic(category: Any, instance: Any, label_set: str = "trainid") -> np.ndarray:
    """Colour a panoptic segmentation: class colours, instance shades, segment boundaries.

    Each pixel gets its class's official CityScapes colour; each instance of a class is a
    different shade of it (darker or lighter, stable per instance id), and the border pixels
    of every segment are drawn white, so touching instances of one class stay apart. Void
    (category 255) is black.

    Args:
        category: HxW class indices (255: void).
        instance: HxW instance ids (0 for stuff and void).
        label_set: "trainid" or "category".

    Returns:
        HxWx3 uint8 RGB image.
    """
    classes = _as_numpy(category).astype(np.int64)
    ids = _as_numpy(instance).astype(np.int64)
    if classes.shape != ids.shape:
        raise ValueError(f"category {classes.shape} and instance {ids.shape} differ in size")
    rgb = colorize_semantic(classes, label_set).astype(np.float64)
    # Shades from 0.55x to 1.45x of the class colour (clipped), spread by the golden ratio.
    shade = 0.55 + 0.9 * ((ids * _GOLDEN_RATIO_CONJUGATE) % 1.0)
    rgb = np.where((ids > 0)[..., None], np.clip(rgb * shade[..., None], 0, 255), rgb)
    segment = classes * (int(ids.max(initial=0)) + 1) + ids
    border = instance_boundaries(segment + 1) & (classes != IGNORE_INDEX)
    rgb[border] = 255.0
    return rgb.round().astype(np.uint8)


def overlay_instances(
    image: Any,
    instance_map: Any,
    alpha: float = 0.5,
    outline: bool = True,
) -> np.ndarray:
    """Tint every instance of an image in its own colour and outline it.

    The outline is drawn on the instance's own border pixels, so pixels with
    ``instance_map == 0`` keep exactly the colour of ``image``.

    Args:
        image: HxWx3 uint8 image (or 3xHxW float in [0, 1]).
        instance_map: HxW integer ids; 0 is "no instance".
        alpha: Opacity of the tint.
        outline: Draw each instance's border in its full colour.

    Returns:
        HxWx3 uint8 RGB image.
    """
    base = to_uint8_image(image)
    ids = _as_numpy(instance_map).astype(np.int64)
    if ids.shape != base.shape[:2]:
        raise ValueError(f"instance_map {ids.shape} and image {base.shape[:2]} differ in size")
    unique_ids = np.unique(ids[ids != 0])
    colours = np.zeros((*ids.shape, 3), dtype=np.float64)
    for instance_id in unique_ids:
        colours[ids == instance_id] = instance_colour(instance_id)
    inside = ids != 0
    result = base.astype(np.float64)
    result[inside] = (1.0 - alpha) * result[inside] + alpha * colours[inside]
    if outline:
        border = instance_boundaries(ids)
        result[border] = colours[border]
    return result.round().astype(np.uint8)


def draw_offsets(
    offsets: Any,
    valid: Any | None = None,
    max_magnitude: float | None = None,
) -> np.ndarray:
    """Colour a (dy, dx) vector field: direction is hue, length is brightness.

    Pixels that point at the same centroid from the same side share a hue, so the instances of
    a good prediction appear as colour wheels centred on their centroids.

    Args:
        offsets: 2xHxW (dy, dx) vectors in pixels.
        valid: Bool HxW mask of pixels to draw; the others are black.
        max_magnitude: Length drawn at full brightness; defaults to the 99th percentile of the
            valid lengths.

    Returns:
        HxWx3 uint8 RGB image.
    """
    vectors = _as_numpy(offsets).astype(np.float64)
    if vectors.ndim != 3 or vectors.shape[0] != 2:
        raise ValueError(f"offsets must be 2xHxW (dy, dx), got shape {vectors.shape}")
    dy, dx = vectors
    magnitude = np.hypot(dy, dx)
    mask = np.ones(magnitude.shape, dtype=bool) if valid is None else _as_numpy(valid).astype(bool)
    if max_magnitude is None:
        max_magnitude = float(np.percentile(magnitude[mask], 99)) if mask.any() else 1.0
    max_magnitude = max_magnitude if max_magnitude > 0 else 1.0
    hue = (np.arctan2(dy, dx) + np.pi) / (2.0 * np.pi)
    hsv = np.stack(
        [hue % 1.0, np.ones_like(hue), np.clip(magnitude / max_magnitude, 0.0, 1.0)], axis=-1
    )
    rgb = (hsv_to_rgb(hsv) * 255.0).round().astype(np.uint8)
    rgb[~mask] = 0
    return rgb


def make_panel(
    images: Sequence[tuple[str, Any]],
    columns: int = 3,
    padding: int = 4,
    title_height: int = 14,
) -> np.ndarray:
    """Arrange titled images in a grid (row-major), e.g. input, targets and predictions.

    Args:
        images: (title, image) pairs; images are HxWx3 uint8, HxW (drawn grey) or 3xHxW float.
            Smaller images are placed top-left in a cell the size of the largest one.
        columns: Cells per row.
        padding: Pixels between cells.
        title_height: Height of the white title strip above each cell.

    Returns:
        HxWx3 uint8 RGB image.
    """
    if not images:
        raise ValueError("make_panel needs at least one (title, image) pair")
    tiles = []
    for title, image in images:
        array = _as_numpy(image)
        if array.ndim == 2:
            array = np.repeat(_grey_uint8(array)[..., None], 3, axis=-1)
        tiles.append((title, to_uint8_image(array)))
    cell_h = max(tile.shape[0] for _, tile in tiles) + title_height
    cell_w = max(tile.shape[1] for _, tile in tiles)
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    panel = Image.new(
        "RGB",
        (columns * cell_w + (columns + 1) * padding, rows * cell_h + (rows + 1) * padding),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    for index, (title, tile) in enumerate(tiles):
        left = padding + (index % columns) * (cell_w + padding)
        top = padding + (index // columns) * (cell_h + padding)
        draw.text((left + 1, top + 1), title, fill=(0, 0, 0), font=font)
        panel.paste(Image.fromarray(tile), (left, top + title_height))
    return np.asarray(panel).copy()


def _grey_uint8(array: np.ndarray) -> np.ndarray:
    """A single-channel image as uint8: kept if uint8, else min-max scaled."""
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = values[finite].min(), values[finite].max()
    scaled = (np.where(finite, values, low) - low) / (high - low if high > low else 1.0)
    return (scaled * 255.0).round().astype(np.uint8)
