"""Every cell of an experiment's ``results.csv`` against the runs' ``result.json``.

The expected cell is read from the result by the column's name here, not by the project's
own flattening, so a value written under another column, rounded, rescaled or dropped shows.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def expected_cell(result: Mapping[str, Any], column: str) -> Any:
    """What ``column`` of results.csv holds for the run of ``result`` (None: an empty cell)."""
    if column in ("row", "seed", "global_step"):
        return result[column]
    if column == "tasks":
        return "+".join(result["tasks"])
    if column == "wall_time_s":
        return round(result["wall_time_s"], 1)  # the CSV keeps tenths of a second
    group, _, key = column.partition("/")
    if group in ("test", "val"):
        return result[group].get(column)
    if group in ("sigma", "weight"):
        return result[group].get(key)
    if group == "cost":
        return (result.get("cost") or {}).get(key)
    raise AssertionError(f"results.csv has a column {column!r} that no result.json field holds")


def assert_cells_match_results(path: Path, results: Sequence[Mapping[str, Any]]) -> None:
    """One line per result, and each of its cells equal to the result's value."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    runs = {(result["row"], result["seed"]): result for result in results}
    assert sorted((line["row"], int(line["seed"])) for line in lines) == sorted(runs)
    for line in lines:
        result = runs[(line["row"], int(line["seed"]))]
        for column, cell in line.items():
            expected = expected_cell(result, column)
            where = f"{line['row']} seed {line['seed']}, {column}"
            if expected is None:
                assert cell == "", where
            elif isinstance(expected, str):
                assert cell == expected, where
            else:
                assert float(cell) == expected, where  # repr() of a float reads back exactly
        for group in ("test", "val"):  # no metric of the run left out
            assert set(result[group]) <= set(line), line["row"]
