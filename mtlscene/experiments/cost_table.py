"""What each row of an experiment costs: parameters, FLOPs per image and step time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mtlscene.experiments.statistics import format_mean_std

# result["cost"] key -> (column title, scale, digits). Parameters and FLOPs are the same
# for every seed of a row; the step time varies with the machine's load.
COST_COLUMNS = {
    "parameters": ("Params (M)", 1e-6, 2),
    "shared_parameters": ("Shared params (M)", 1e-6, 2),
    "flops_per_image": ("GFLOPs/image", 1e-9, 2),
    "median_step_s": ("Median step (s)", 1.0, 3),
}


def flat_cost(result: Mapping[str, Any]) -> dict[str, float]:
    """``cost/<key>`` columns of one run for ``results.csv`` (empty for older results)."""
    cost = result.get("cost") or {}
    return {f"cost/{key}": cost[key] for key in COST_COLUMNS if cost.get(key) is not None}


def cost_lines(results: Sequence[Mapping[str, Any]], rows: Sequence[str]) -> list[str]:
    """A markdown "Cost" table, one line per row (mean ± std over its seeds); no lines when
    no run recorded a cost (results written before runs measured it)."""
    if not any(result.get("cost") for result in results):
        return []
    header = ["Loss", *(title for title, _, _ in COST_COLUMNS.values()), "seeds"]
    lines = [
        "",
        "### Cost: mean ± std over seeds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        costs = [r["cost"] for r in results if r["row"] == row and r.get("cost")]
        cells = [row]
        for key, (_, scale, digits) in COST_COLUMNS.items():
            values = [c[key] * scale for c in costs if c.get(key) is not None]
            cells.append(format_mean_std(values, digits))
        cells.append(str(len(costs)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Parameters of the whole network and of its shared encoder; forward FLOPs of one "
        "image at the data's size (a multiply-add counts 2); median wall-clock time of a "
        "training batch (data loading included) on the machine that ran it. Seeds: the runs "
        "that recorded a cost.",
    ]
    return lines


__all__ = ["COST_COLUMNS", "cost_lines", "flat_cost"]
