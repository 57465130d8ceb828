"""Figures people look at instead of reading numbers (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Figure objects draw without pyplot, so importing this never switches the backend of a
# notebook or GUI session.
from matplotlib.figure import Figure

# Why the learned weights of classification and regression tasks start apart.
WEIGHT_NOTE = (
    "Learned weight w = 1/σ² for classification (softmax scaled by 1/σ², paper Eq. 10) and "
    "1/(2σ²) for regression (Gaussian, Eq. 7):\nat equal σ a regression task weighs half as "
    "much, so from σ ≈ 1 semantics starts near 1 and the regressions near 0.5."
)


def weight_rule(scale: float, exponent: float) -> str:
    """``w = scale * exp(-exponent * s)`` with ``s = log σ²`` written in σ, e.g. ``1/(2σ²)``.

    Args:
        scale: the constant ``c`` of the weight.
        exponent: ``k``; the weight falls as ``σ^(2k)``.
    """
    power = {1.0: "σ²", 0.5: "σ"}.get(float(exponent), f"σ^{2 * exponent:g}")
    if scale == 1:
        return f"1/{power}"
    return f"1/({1 / scale:g}{power})"


def uncertainty_figure(
    history: Iterable[Mapping[str, Any]], weight_rules: Mapping[str, str] | None = None
) -> Figure:
    """Sigma and effective weight against step, one line per task.

    Args:
        history: rows with ``step``, ``task``, ``sigma`` and ``weight``.
        weight_rules: per task, how its weight follows from sigma (``1/σ²``...): named in
            the legend, with a note saying why the tasks' weights differ at equal sigma.
    """
    rows = list(history)
    rules = dict(weight_rules or {})
    tasks = sorted({row["task"] for row in rows})
    figure = Figure(figsize=(11, 4), constrained_layout=True)
    ax_sigma, ax_weight = figure.subplots(1, 2)
    for task in tasks:
        points = sorted(
            (row["step"], row["sigma"], row["weight"]) for row in rows if row["task"] == task
        )
        steps = [p[0] for p in points]
        ax_sigma.plot(steps, [p[1] for p in points], label=task)
        label = f"{task}: w = {rules[task]}" if task in rules else task
        ax_weight.plot(steps, [p[2] for p in points], label=label)
    ax_sigma.set(title="Task uncertainty sigma", xlabel="step", ylabel="sigma")
    ax_weight.set(title="Effective loss weight", xlabel="step", ylabel="weight")
    for axis in (ax_sigma, ax_weight):
        axis.grid(alpha=0.3)
        axis.legend()
    if len(set(rules.values())) > 1:
        figure.supxlabel(WEIGHT_NOTE, fontsize=9)
    return figure


def plot_uncertainty_history(
    history: Iterable[Mapping[str, Any]],
    path: str | Path,
    weight_rules: Mapping[str, str] | None = None,
) -> Path:
    """Sigma and effective weight against step, one line per task, saved as PNG (see
    `uncertainty_figure`)."""
    figure = uncertainty_figure(history, weight_rules)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
