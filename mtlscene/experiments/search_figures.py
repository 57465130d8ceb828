"""Figures of a weight search: the objective by trial, and the weights tried."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _complete(study) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.trials if t.state == TrialState.COMPLETE]


def plot_objective(study, spec, path: Path) -> list[Path]:
    """Each trial's objective and the best so far, against the trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = _complete(study)
    if not trials:
        return []
    numbers = [t.number for t in trials]
    values = [t.value for t in trials]
    pick = max if spec.direction == "maximize" else min
    best = [pick(values[: i + 1]) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(numbers, values, "o", color="tab:blue", label="trial")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{spec.objective} (validation)")
    ax.set_title(f"{spec.sampler.upper()} search over {' / '.join(spec.tasks)}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def _ternary(weights: dict[str, float], tasks) -> tuple[float, float]:
    # Barycentric to the plane: first task at (0, 0), second at (1, 0), third at the top.
    total = sum(weights.get(t, 0.0) for t in tasks) or 1.0
    b, c = weights.get(tasks[1], 0.0) / total, weights.get(tasks[2], 0.0) / total
    return b + c / 2, c * math.sqrt(3) / 2


def plot_weights(study, spec, path: Path) -> list[Path]:
    """The weights tried, coloured by objective: a line for two tasks, the simplex for three."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = _complete(study)
    tasks = list(spec.tasks)
    if not trials or len(tasks) not in (2, 3):
        return []
    values = [t.value for t in trials]
    weights = [t.user_attrs["weights"] for t in trials]
    best = study.best_trial
    fig, ax = plt.subplots(figsize=(6, 4.2))
    if len(tasks) == 2:
        share = [w[tasks[0]] / ((w[tasks[0]] + w[tasks[1]]) or 1.0) for w in weights]
        ax.scatter(share, values, c=values, cmap="viridis_r", edgecolor="k", zorder=3)
        bw = best.user_attrs["weights"]
        ax.axvline(
            bw[tasks[0]] / (bw[tasks[0]] + bw[tasks[1]]),
            color="tab:red",
            ls="--",
            label=f"best ({tasks[0]} {bw[tasks[0]]:.3f} / {tasks[1]} {bw[tasks[1]]:.3f})",
        )
        ax.set_xlabel(f"{tasks[0]} weight / ({tasks[0]} + {tasks[1]})")
        ax.set_ylabel(f"{spec.objective} (validation)")
        ax.set_xlim(0, 1)
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        corners = [(0, 0), (1, 0), (0.5, math.sqrt(3) / 2), (0, 0)]
        ax.plot(*zip(*corners, strict=True), color="k", lw=1)
        for (x, y), task in zip(corners[:3], tasks, strict=True):
            ax.annotate(
                task,
                (x, y),
                textcoords="offset points",
                xytext=(0, -12 if y == 0 else 5),
                ha="center",
            )
        points = [_ternary(w, tasks) for w in weights]
        scatter = ax.scatter(
            *zip(*points, strict=True), c=values, cmap="viridis_r", edgecolor="k", zorder=3
        )
        bx, by = _ternary(best.user_attrs["weights"], tasks)
        ax.plot(bx, by, "*", color="tab:red", markersize=16, label="best", zorder=4)
        fig.colorbar(scatter, ax=ax, label=f"{spec.objective} (validation)")
        ax.set_aspect("equal")
        ax.axis("off")
        ax.legend(loc="upper right")
    ax.set_title("weights tried, coloured by the objective")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
