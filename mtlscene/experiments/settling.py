"""Has each learned sigma settled? Its weight against the weight that is optimal for the
current loss.

For a term ``c * exp(-k s) * L + s / 2`` the best s for a given loss L gives the effective
weight ``w* = c * exp(-k s*) = 1 / (2 k L)`` (k = 1 for the paper's Gaussian and Boltzmann
terms, 1/2 for Laplace). A learned weight far from ``w*`` at the end of training means s
was still moving: the run was too short (or s's learning rate too small) for the learned
weighting to be the one the method defines. ``k`` is read off the run's own (s, weight)
history, so no likelihood table is needed here. With the exact Boltzmann term the logged
semantic loss already contains s, and ``w*`` is only the approximate form's optimum.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlscene.experiments.statistics import mean_std

HISTORY_FILE = "uncertainty_history.csv"
# Per-batch losses are noisy: the equilibrium uses a running mean over this many logged steps.
SMOOTHING = 5


def read_history(log_dir: Path) -> list[dict[str, Any]]:
    """The per-step rows of a run's ``uncertainty_history.csv`` (empty when there is none)."""
    path = Path(log_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        rows = []
        for r in csv.DictReader(handle):
            if r["event"] != "step":
                continue
            rows.append(
                {
                    "step": int(r["step"]),
                    "task": r["task"],
                    "s": float(r["s"]) if r.get("s") not in (None, "") else math.nan,
                    "sigma": float(r["sigma"]),
                    "weight": float(r["weight"]),
                    "loss": float(r["loss"]) if r.get("loss") not in (None, "") else math.nan,
                }
            )
        return rows


def weight_exponent(points: Sequence[dict[str, Any]]) -> float | None:
    """k in ``weight = c * exp(-k s)``, fitted by least squares; None if s never moved."""
    pairs = [(p["s"], math.log(p["weight"])) for p in points if p["weight"] > 0]
    pairs = [(s, w) for s, w in pairs if math.isfinite(s)]
    if len(pairs) < 2:
        return None
    mean_s = statistics.fmean(s for s, _ in pairs)
    spread = sum((s - mean_s) ** 2 for s, _ in pairs)
    if spread < 1e-8:
        return None
    mean_w = statistics.fmean(w for _, w in pairs)
    slope = sum((s - mean_s) * (w - mean_w) for s, w in pairs) / spread
    return -slope


def equilibrium_curves(history: Sequence[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Per task, ``(step, w*)`` along training from the smoothed logged loss."""
    curves = {}
    for task in sorted({h["task"] for h in history}):
        points = sorted((h for h in history if h["task"] == task), key=lambda h: h["step"])
        k = weight_exponent(points)
        if k is None or k <= 0:
            continue
        curve = []
        for index, point in enumerate(points):
            window = [p["loss"] for p in points[max(0, index - SMOOTHING + 1) : index + 1]]
            window = [v for v in window if math.isfinite(v)]
            if window and statistics.fmean(window) > 0:
                curve.append((point["step"], 1.0 / (2.0 * k * statistics.fmean(window))))
        if curve:
            curves[task] = curve
    return curves


def final_settling(history: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per task, ``(final weight, w* at the end)``."""
    out = {}
    for task, curve in equilibrium_curves(history).items():
        last = max((h for h in history if h["task"] == task), key=lambda h: h["step"])
        out[task] = (last["weight"], curve[-1][1])
    return out


def settling_lines(results: Sequence[dict[str, Any]], row_names: Sequence[str]) -> list[str]:
    """A markdown table: per learned row and task, final weight, w* and their ratio."""
    lines = []
    for name in row_names:
        finals = [
            final_settling(read_history(Path(r["log_dir"])))
            for r in results
            if r["row"] == name and r.get("log_dir")
        ]
        finals = [f for f in finals if f]
        tasks = sorted({task for f in finals for task in f})
        for task in tasks:
            pairs = [f[task] for f in finals if task in f]
            ratio, spread = mean_std([w / eq for w, eq in pairs])
            lines.append(
                f"| {name} | {task} | {statistics.fmean(w for w, _ in pairs):.3f} | "
                f"{statistics.fmean(eq for _, eq in pairs):.3f} | "
                f"{ratio:.2f}"
                + (f" ± {spread:.2f}" if len(pairs) > 1 else "")
                + f" | {len(pairs)} |"
            )
    if not lines:
        return []
    return [
        "",
        "### Has sigma settled? Final learned weight against the weight optimal for the final loss",
        "",
        "| Row | Task | final weight | w* = 1/(2kL) | ratio | seeds |",
        "|---|---|---|---|---|---|",
        *lines,
        "",
        "w*: the weight at which s would minimise its term for the task's loss at the end "
        "(running mean of the last logged training losses). A ratio far from 1 means s was "
        "still moving when training stopped.",
    ]
