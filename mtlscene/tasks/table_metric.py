"""What a head contributes to an experiment's table: its columns and their Δm roles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TableMetric:
    """One column of an experiment's table, declared by the head that computes it.

    Args:
        key: the metric's name under ``{stage}/{task}/`` (e.g. ``miou`` for
            ``test/semantic/miou``).
        title: the column's title (units included, e.g. ``"IoU %"``).
        higher_is_better: direction, for bold marking, trade-off figures and Δm's sign.
        scale: factor applied before printing (100 for a share printed in %).
        digits: decimals printed.
        in_delta: whether the metric counts in Δm (CityScapes' Table 1 counts one metric
            per task; NYUv2's protocol counts all nine).
        target: a value the metric should be close to rather than high or low (e.g. the
            nominal coverage of an interval, 0.683); the table's bold then marks the mean
            closest to it. None: ``higher_is_better`` decides.
    """

    key: str
    title: str
    higher_is_better: bool
    scale: float = 1.0
    digits: int = 2
    in_delta: bool = True
    target: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as stored in an experiment run's ``result.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableMetric:
        return cls(**data)
