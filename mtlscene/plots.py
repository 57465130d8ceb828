"""Figures people look at instead of reading numbers (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Figure objects draw without pyplot, so importing this never switches the backend of a
# notebook or GUI session.
from matplotlib.figure import Figure


def plot_uncertainty_history(history: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Sigma and effective weight against step, one line per task, saved as PNG."""
    rows = list(history)
    tasks = sorted({row["task"] for row in rows})
    figure = Figure(figsize=(11, 4), constrained_layout=True)
    ax_sigma, ax_weight = figure.subplots(1, 2)
    for task in tasks:
        points = sorted(
            (row["step"], row["sigma"], row["weight"]) for row in rows if row["task"] == task
        )
        steps = [p[0] for p in points]
        ax_sigma.plot(steps, [p[1] for p in points], label=task)
        ax_weight.plot(steps, [p[2] for p in points], label=task)
    ax_sigma.set(title="Task uncertainty sigma", xlabel="step", ylabel="sigma")
    ax_weight.set(title="Effective loss weight", xlabel="step", ylabel="weight")
    for axis in (ax_sigma, ax_weight):
        axis.grid(alpha=0.3)
        axis.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
