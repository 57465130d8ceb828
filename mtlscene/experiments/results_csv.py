"""``results.csv`` read back into the runs' results, so a table can be rewritten from it.

An experiment folder that was copied without its run folders (``docs/experiments/*``) keeps
``results.csv`` (one line per run) and ``columns.json`` (the table columns the heads
declared). `read_csv` turns them back into the dicts ``result.json`` holds, as far as
a table needs: row, seed, tasks, step, wall time, test and validation metrics, sigmas,
weights and cost. What only the run folders hold (the sigma history of the settling check,
the logs) is not in them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS_FILE = "columns.json"
_GROUPS = {"test/": "test", "val/": "val", "sigma/": "sigma", "weight/": "weight"}


def write_columns(results: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """``columns.json``: per task (or group), every table metric any run declared; None
    (and no file) for results from before heads declared their columns."""
    declared: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        for group, metrics in (result.get("table_metrics") or {}).items():
            for metric in metrics:
                declared.setdefault(group, {}).setdefault(metric["key"], metric)
    if not declared:
        return None
    payload = {group: list(metrics.values()) for group, metrics in declared.items()}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The runs of ``results.csv`` (and of ``columns.json`` beside it, when there is one).

    Empty cells (a metric another row's heads log) are left out, so a run has exactly the
    metrics it logged. Each run declares the columns of ``columns.json`` whose metric it
    logged; without that file the table falls back to the paper's columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: summarize --from-csv rewrites the table of a folder that "
            "holds an experiment's results.csv"
        )
    columns_path = path.with_name(COLUMNS_FILE)
    declared = (
        json.loads(columns_path.read_text(encoding="utf-8")) if columns_path.is_file() else None
    )
    results = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line in csv.DictReader(handle):
            result: dict[str, Any] = {
                "row": line["row"],
                "seed": int(line["seed"]),
                "tasks": line["tasks"].split("+"),
                "global_step": int(float(line["global_step"])),
                "wall_time_s": float(line["wall_time_s"]),
                "test": {},
                "val": {},
                "sigma": {},
                "weight": {},
            }
            cost = {}
            for key, text in line.items():
                if text in (None, "") or key in result:
                    continue
                if key.startswith("cost/"):
                    cost[key.removeprefix("cost/")] = _number(text)
                    continue
                for prefix, group in _GROUPS.items():
                    if key.startswith(prefix):
                        name = key if group in ("test", "val") else key.removeprefix(prefix)
                        result[group][name] = float(text)
            if cost:
                result["cost"] = cost
            # The csv's columns are sorted by name; a run lists its tasks in the model's order.
            for group in ("sigma", "weight"):
                values = result[group]
                order = [t for t in result["tasks"] if t in values] + sorted(
                    set(values) - set(result["tasks"])
                )
                result[group] = {task: values[task] for task in order}
            if declared is not None:
                result["table_metrics"] = {
                    group: [m for m in metrics if f"test/{group}/{m['key']}" in result["test"]]
                    for group, metrics in declared.items()
                    if any(f"test/{group}/{m['key']}" in result["test"] for m in metrics)
                }
            results.append(result)
    return results


__all__ = ["COLUMNS_FILE", "read_csv", "write_columns"]
