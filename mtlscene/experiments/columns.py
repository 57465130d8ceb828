"""An experiment table's columns, as the heads of its runs declared them.

Each run's ``result.json`` carries ``table_metrics`` (task -> the TableMetric dicts of the
head that trained it, see `mtlscene.tasks.TableMetric`), so a table over NYUv2, over
CityScapes or over a user's own task gets that task's metrics. Results written before heads
declared their columns get the paper's Table 1 columns (`LEGACY_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mtlscene.tasks.table_metric import TableMetric


@dataclass(frozen=True)
class Column:
    """A table column: a test metric (``key``), its title, scale, direction and task."""

    key: str
    title: str
    scale: float
    higher_is_better: bool
    task: str
    digits: int = 2
    in_delta: bool = True
    target: float | None = None

    @classmethod
    def of(cls, task: str, metric: TableMetric, stage: str = "test") -> Column:
        return cls(
            key=f"{stage}/{task}/{metric.key}",
            title=metric.title,
            scale=metric.scale,
            higher_is_better=metric.higher_is_better,
            task=task,
            digits=metric.digits,
            in_delta=metric.in_delta,
            target=metric.target,
        )


# The paper's Table 1 columns (test split), plus AP and PQ which our post-processing adds.
LEGACY_COLUMNS = (
    Column("test/semantic/miou", "IoU %", 100.0, True, "semantic"),
    Column("test/instance/mae", "Instance err px", 1.0, False, "instance", 3),
    Column("test/depth/mae", "Inv. depth err px", 1.0, False, "depth", 3),
    Column("test/instance/ap", "AP %", 100.0, True, "instance", in_delta=False),
    Column("test/panoptic/pq", "PQ %", 100.0, True, "panoptic", in_delta=False),
)


def declared_columns(result: dict[str, Any]) -> list[Column]:
    """The columns one run's heads declared (the legacy ones for older results)."""
    declared = result.get("table_metrics")
    if declared is None:
        return [c for c in LEGACY_COLUMNS if c.key in result.get("test", {})]
    return [
        Column.of(task, TableMetric.from_dict(metric))
        for task, metrics in declared.items()
        for metric in metrics
    ]


def _task_order(results: Sequence[dict[str, Any]]) -> list[str]:
    # The run with the most tasks gives the model's order (semantic, instance, depth);
    # tasks only other runs trained follow in the order met.
    order: list[str] = []
    for result in sorted(results, key=lambda r: -len(r.get("tasks", []))):
        for task in [*result.get("tasks", []), *(result.get("table_metrics") or {})]:
            if task not in order:
                order.append(task)
    return order


def experiment_columns(results: Iterable[dict[str, Any]]) -> list[Column]:
    """Every column any run declared: Δm metrics first, task by task, then the others."""
    results = list(results)
    by_key: dict[str, Column] = {}
    for result in results:
        for column in declared_columns(result):
            by_key.setdefault(column.key, column)
    order = _task_order(results)

    def rank(column: Column) -> tuple[int, int]:
        task = order.index(column.task) if column.task in order else len(order)
        return (0 if column.in_delta else 1, task)

    return sorted(by_key.values(), key=rank)


def delta_columns(columns: Iterable[Column]) -> list[Column]:
    """The columns that count in Δm."""
    return [c for c in columns if c.in_delta]
