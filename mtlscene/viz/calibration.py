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
