"""Pictures of gradient diagnostics: cosine per task pair and norm per task over training."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Figure objects draw without pyplot: importing this never switches a session's backend.
from matplotlib.figure import Figure


def _pair(row: Mapping[str, Any]) -> str:
    return f"{row['task_a']}~{row['task_b']}"


def conflict_share(cosines: Iterable[float]) -> float:
    """Share of the defined (not NaN) cosines that are negative; NaN when none is defined."""
    defined = [c for c in cosines if not math.isnan(c)]
    return sum(c < 0 for c in defined) / len(defined) if defined else math.nan


def gradient_history_figure(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Cosine per task pair (left) and gradient norm per task (right, log scale) against step.

    Args:
        rows: one per step and pair with ``step``, ``task_a``, ``task_b``, ``norm_a``,
            ``norm_b`` and ``cosine`` (as written to ``gradient_diagnostics.csv``).
        title: figure title (default: a description of what is shown).
    """
    figure = Figure(figsize=(12, 4.5), constrained_layout=True)
    ax_cos, ax_norm = figure.subplots(1, 2)
    for pair in dict.fromkeys(_pair(row) for row in rows):
        points = sorted((r["step"], r["cosine"]) for r in rows if _pair(r) == pair)
        share = conflict_share(c for _, c in points)
        label = f"{pair} (conflict {share:.0%})" if not math.isnan(share) else pair
        ax_cos.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
    ax_cos.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax_cos.set(
        title="Cosine of task gradients (shared encoder)",
        xlabel="training step",
        ylabel="cosine similarity",
        ylim=(-1.05, 1.05),
    )
    norms: dict[str, dict[int, float]] = {}
    for row in rows:
        norms.setdefault(row["task_a"], {})[row["step"]] = row["norm_a"]
        norms.setdefault(row["task_b"], {})[row["step"]] = row["norm_b"]
    for task, values in norms.items():
        steps = sorted(values)
        # Zero norms (task absent from the batch) cannot be drawn on a log axis: gaps.
        ax_norm.plot(
            steps, [values[s] if values[s] > 0 else math.nan for s in steps], marker=".", label=task
        )
    ax_norm.set_yscale("log")
    ax_norm.set(
        title="Gradient norm per task (shared encoder)",
        xlabel="training step",
        ylabel="gradient norm ‖g‖ (log scale)",
    )
    for axis in (ax_cos, ax_norm):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
    figure.suptitle(title or "Gradient diagnostics: cos < 0 means the tasks pull apart")
    return figure


def gradient_band_figure(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
    runs: int,
    title: str = "",
) -> Figure:
    """Mean cosine per task pair over runs against step, with a ±1 std band.

    Args:
        curves: pair ``a~b`` -> (steps, mean cosine, std of the cosine over runs).
        runs: how many runs (seeds) the curves average, for the title.
        title: figure title (default names the number of runs).
    """
    figure = Figure(figsize=(8, 4.5), constrained_layout=True)
    axis = figure.subplots()
    for pair, (steps, mean, std) in curves.items():
        (line,) = axis.plot(steps, mean, label=pair)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    axis.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    axis.set(xlabel="training step", ylabel="cosine similarity", ylim=(-1.05, 1.05))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    axis.set_title(
        title or f"Cosine of task gradients at the shared encoder: mean ± std over {runs} runs"
    )
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save ``figure`` as PNG at ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


__all__ = ["conflict_share", "gradient_band_figure", "gradient_history_figure", "save_figure"]
