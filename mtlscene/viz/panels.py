"""Pictures that explain themselves: class legends, colour bars, enlarged tiles, full grids.

Used by `PredictionWriter` for ``{stem}_panel.png`` and
``{stem}_depth.png``: a reader sees which colour is which class, what a disparity colour
means in pixels, and the ground truth beside each prediction, without reading the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from mtlscene.data.cityscapes.labels import class_names, palette

MIN_TILE_WIDTH = 512  # working resolutions (256 wide) are enlarged to at least this
FONT_SIZE = 16


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def enlarge(picture: np.ndarray, min_width: int = MIN_TILE_WIDTH) -> np.ndarray:
    """``picture`` repeated pixel by pixel (nearest) by the smallest integer factor that makes
    it at least ``min_width`` wide: label maps keep their exact colours."""
    factor = max(1, -(-min_width // picture.shape[1]))
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1) if factor > 1 else picture


def classes_present(*maps: np.ndarray, label_set: str = "trainid") -> list[int]:
    """Class indices (sorted) that occur in any of ``maps`` (ignore and out-of-range left out)."""
    count = len(class_names(label_set))
    present: set[int] = set()
    for values in maps:
        present |= {int(v) for v in np.unique(values) if 0 <= int(v) < count}
    return sorted(present)


def class_legend(
    classes: Iterable[int], label_set: str = "trainid", width: int = MIN_TILE_WIDTH
) -> np.ndarray:
    """Colour swatches and names of ``classes`` in the official CityScapes colours, laid out
    in as many columns as fit ``width``."""
    names, colours = class_names(label_set), palette(label_set)
    classes = list(classes)
    font = _font()
    row, swatch, column_width = FONT_SIZE + 6, FONT_SIZE, 150
    columns = max(1, width // column_width)
    rows = max(1, -(-len(classes) // columns))
    canvas = Image.new("RGB", (width, rows * row + 8), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if not classes:
        draw.text((4, 4), "no class predicted", fill=(0, 0, 0), font=font)
    for index, cls in enumerate(classes):
        left = 4 + (index // rows) * column_width
        top = 4 + (index % rows) * row
        colour = tuple(int(c) for c in colours[cls])
        draw.rectangle([left, top, left + swatch, top + swatch], fill=colour, outline=(0, 0, 0))
        draw.text((left + swatch + 5, top), names[cls], fill=(0, 0, 0), font=font)
    return np.asarray(canvas).copy()


def high_percentile(values: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The 99th percentile of the valid finite values (a few outliers do not wash out)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.isfinite(values) if valid is None else np.asarray(valid, bool) & np.isfinite(values)
    return float(np.percentile(values[mask], 99)) if mask.any() else 1.0


def with_colorbar(
    values: np.ndarray,
    valid: np.ndarray | None = None,
    vmax: float | None = None,
    label: str = "",
    cmap: str = "magma",
    min_width: int = MIN_TILE_WIDTH,
) -> np.ndarray:
    """A value map (disparity, depth, sigma, ...) in ``cmap`` from 0 to ``vmax``, with a colour
    bar on its right: ticks at 0, vmax/2 and vmax, and the quantity's name and unit.

    Args:
        values: HxW values; pixels outside ``valid`` (or not finite) are black.
        valid: bool HxW mask, or None for every finite pixel.
        vmax: value at the top of the bar (larger values saturate); default the 99th
            percentile of the valid values.
        label: what the colours measure, e.g. "disparity [px]" (none drawn when empty).
        cmap: matplotlib colour map.
        min_width: the map is enlarged to at least this width (0: kept at its size).
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.isfinite(values) if valid is None else np.asarray(valid, bool) & np.isfinite(values)
    vmax = high_percentile(values, mask) if vmax is None else vmax
    vmax = vmax if vmax > 0 else 1.0
    colour = colormaps[cmap]
    picture = (colour(np.clip(np.where(mask, values, 0) / vmax, 0, 1))[..., :3] * 255).round()
    picture = picture.astype(np.uint8)
    picture[~mask] = 0
    picture = enlarge(picture, min_width)
    height = picture.shape[0]
    bar, gap, text = 16, 6, 96
    ramp = np.linspace(1, 0, height)[:, None].repeat(bar, axis=1)
    strip = (colour(ramp)[..., :3] * 255).round().astype(np.uint8)
    canvas = Image.new("RGB", (picture.shape[1] + gap + bar + text, height), (255, 255, 255))
    canvas.paste(Image.fromarray(picture), (0, 0))
    canvas.paste(Image.fromarray(strip), (picture.shape[1] + gap, 0))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(), _font(FONT_SIZE - 2)
    left = picture.shape[1] + gap + bar + 4
    for fraction in (1.0, 0.5, 0.0):
        top = min(max(int((1 - fraction) * height) - FONT_SIZE // 2, 0), height - FONT_SIZE - 2)
        draw.text((left, top), f"{fraction * vmax:.3g}", fill=(0, 0, 0), font=font)
    if label:
        draw.text((left, height // 4), label, fill=(0, 0, 0), font=small)
    return np.asarray(canvas).copy()


def titled_grid(
    tiles: Sequence[tuple[str, np.ndarray]],
    legend: Sequence[int] | None = None,
    label_set: str = "trainid",
    columns: int = 2,
    padding: int = 6,
) -> np.ndarray:
    """Titled tiles in rows of ``columns`` with no empty cell, and a class legend.

    Args:
        tiles: (title, HxWx3 uint8 picture) pairs, row by row.
        legend: class indices to explain (None: no legend). When the tiles leave the last
            row short, the legend fills it as a cell; otherwise it runs under the grid.
        label_set: the classes' label set ("trainid" or "category").
        columns: tiles per row (1 when the tiles cannot fill whole rows).
        padding: pixels between cells.
    """
    tiles = list(tiles)
    title = FONT_SIZE + 8
    cell_w = max(tile.shape[1] for _, tile in tiles)
    legend_as_cell = legend is not None and len(tiles) % columns != 0
    if legend_as_cell:
        tiles.append(("classes", class_legend(legend, label_set, cell_w)))
    if len(tiles) % columns != 0:  # rows cannot be filled: one column
        columns = 1
    cell_h = max(tile.shape[0] for _, tile in tiles) + title
    rows = len(tiles) // columns
    width = columns * cell_w + (columns + 1) * padding
    strip = None
    if legend is not None and not legend_as_cell:
        strip = class_legend(legend, label_set, width - 2 * padding)
    strip_h = 0 if strip is None else strip.shape[0] + title + padding
    canvas = Image.new("RGB", (width, rows * (cell_h + padding) + padding + strip_h), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for index, (name, tile) in enumerate(tiles):
        left = padding + (index % columns) * (cell_w + padding)
        top = padding + (index // columns) * (cell_h + padding)
        draw.text((left + 2, top + 2), name, fill=(0, 0, 0), font=font)
        canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (left, top + title))
    if strip is not None:
        top = padding + rows * (cell_h + padding)
        draw.text((padding + 2, top + 2), "classes", fill=(0, 0, 0), font=font)
        canvas.paste(Image.fromarray(strip), (padding, top + title))
    return np.asarray(canvas).copy()


__all__ = [
    "MIN_TILE_WIDTH",
    "class_legend",
    "classes_present",
    "enlarge",
    "titled_grid",
    "high_percentile",
    "with_colorbar",
]
