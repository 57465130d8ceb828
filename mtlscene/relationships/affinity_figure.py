"""The affinity matrix as a heatmap (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure


def affinity_figure(
    tasks: Sequence[str],
    matrix: Sequence[Sequence[float]],
    std: Sequence[Sequence[float]] | None = None,
    title: str = "Lookahead affinity Z(i → j)",
) -> Figure:
    """Rows: the task that stepped (i); columns: the task whose loss is read (j).

    Red: a step on i lowers j's loss (helps); blue: raises it. The colour scale is symmetric
    about 0 so that the sign reads at a glance.
    """
    size = 1.3 * len(tasks) + 2.2
    figure = Figure(figsize=(size + 1.0, size), constrained_layout=True)
    axis = figure.subplots()
    values = [[float(v) for v in row] for row in matrix]
    off_diagonal = [abs(v) for i, row in enumerate(values) for j, v in enumerate(row) if i != j]
    limit = max(off_diagonal or [abs(v) for row in values for v in row] or [1.0]) or 1.0
    image = axis.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            text = f"{value:.3g}" if std is None else f"{value:.3g}\n± {float(std[i][j]):.2g}"
            weight = "normal" if i == j else "bold"
            axis.text(j, i, text, ha="center", va="center", fontsize=9, fontweight=weight)
    axis.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    axis.set_yticks(range(len(tasks)), tasks)
    axis.set(xlabel="j: task whose loss is read", ylabel="i: task that stepped", title=title)
    figure.colorbar(image, ax=axis, shrink=0.8, label="1 - L_j(after step on i) / L_j(before)")
    return figure


def plot_affinity(
    tasks: Sequence[str],
    matrix: Sequence[Sequence[float]],
    path: str | Path,
    std: Sequence[Sequence[float]] | None = None,
    title: str = "Lookahead affinity Z(i → j)",
) -> Path:
    """`affinity_figure` saved as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    affinity_figure(tasks, matrix, std, title).savefig(path, dpi=100)
    return path
