"""Figures of per-pixel uncertainty calibration: reliability diagram and sparsification."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_reliability(data: Mapping[str, object], path: str | Path, title: str) -> Path:
    """Accuracy against confidence per bin (bars), the diagonal, and the bins' pixel share.

    Args:
        data: ``counts``, ``confidence``, ``accuracy`` per bin and ``ece``
            (`mtlscene.metrics.aleatoric.SemanticCalibration.figure_data`).
        path: PNG to write.
        title: figure title (the task and split).
    """
    counts = np.asarray(data["counts"], dtype=float)
    confidence = np.asarray(data["confidence"], dtype=float)
    accuracy = np.asarray(data["accuracy"], dtype=float)
    bins = len(counts) - 1  # the last bin holds confidence exactly 1
    edges = np.linspace(0, 1, bins + 1)
    centres = np.append((edges[:-1] + edges[1:]) / 2, 1.0)
    figure = Figure(figsize=(9, 4), constrained_layout=True)
    ax_rel, ax_count = figure.subplots(1, 2)
    filled = counts > 0
    ax_rel.bar(centres[filled], accuracy[filled], width=1 / bins, edgecolor="k", label="accuracy")
    ax_rel.plot(centres[filled], confidence[filled], "o", color="tab:red", label="confidence")
    ax_rel.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax_rel.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"{title}: ECE {100 * float(data['ece']):.2f} %",
    )
    ax_rel.legend(loc="upper left")
    share = counts / max(counts.sum(), 1)
    ax_count.bar(centres, share, width=1 / bins, edgecolor="k")
    ax_count.set(
        xlim=(0, 1.05), xlabel="confidence", ylabel="share of pixels", title="pixels per bin"
    )
    return _save(figure, path)


def plot_sparsification(data: Mapping[str, object], path: str | Path, title: str) -> Path:
    """Sparsification curves by predicted uncertainty, by true error (oracle) and random.

    Args:
        data: ``fractions``, ``by_uncertainty``, ``oracle``, ``ause``, ``ause_random``
            (`mtlscene.metrics.aleatoric.AleatoricRegressionMetrics.figure_data`).
        path: PNG to write.
        title: figure title.
    """
    fractions = np.asarray(data["fractions"], dtype=float)
    by_uncertainty = np.asarray(data["by_uncertainty"], dtype=float)
    oracle = np.asarray(data["oracle"], dtype=float)
    figure = Figure(figsize=(5.5, 4), constrained_layout=True)
    axis = figure.subplots()
    axis.plot(
        fractions, by_uncertainty, label=f"by predicted sigma (AUSE {float(data['ause']):.3g})"
    )
    axis.plot(fractions, oracle, label="oracle (by true error)")
    axis.axhline(
        by_uncertainty[0],
        color="grey",
        ls="--",
        label=f"random order (AUSE {float(data['ause_random']):.3g})",
    )
    axis.fill_between(fractions, oracle, by_uncertainty, alpha=0.2)
    axis.set(xlabel="fraction of pixels removed", ylabel="mean error of the rest", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def colorize_with_colorbar(
    values: np.ndarray, cmap: str = "viridis", vmax: float | None = None, bar: int = 10
) -> np.ndarray:
    """A per-pixel map (e.g. sigma) in a colour map, with a labelled colour bar on its right.

    Args:
        values: HxW non-negative values; non-finite pixels are drawn black.
        cmap: matplotlib colour map.
        vmax: value at the top of the bar; default the 99th percentile (outliers saturate).
        bar: width of the bar in pixels.

    Returns:
        HxW'x3 uint8 RGB: the map, a gap, the bar (0 at the bottom, ``vmax`` at the top) and
        its two tick labels.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if vmax is None:
        vmax = float(np.percentile(values[finite], 99)) if finite.any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    colour = colormaps[cmap]
    picture = (colour(np.clip(np.where(finite, values, 0) / vmax, 0, 1))[..., :3] * 255).round()
    picture = picture.astype(np.uint8)
    picture[~finite] = 0
    height = values.shape[0]
    ramp = np.linspace(1, 0, height)[:, None].repeat(bar, axis=1)
    strip = (colour(ramp)[..., :3] * 255).round().astype(np.uint8)
    label_width = 44
    canvas = Image.new("RGB", (values.shape[1] + 3 + bar + label_width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(picture), (0, 0))
    canvas.paste(Image.fromarray(strip), (values.shape[1] + 3, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    left = values.shape[1] + 3 + bar + 2
    draw.text((left, 0), f"{vmax:.3g}", fill=(0, 0, 0), font=font)
    draw.text((left, max(height - 12, 12)), "0", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
