"""Prints evaluation results as a table: after fit, and after test (the paper's columns first)."""

from __future__ import annotations

import math

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

# The paper's Table 1/2 columns: (metric key, column title, scale).
PAPER_COLUMNS = (
    ("semantic/miou", "IoU [%]", 100.0),
    ("instance/mae", "Instance mean error [px]", 1.0),
    ("depth/mae", "Inverse depth mean error [px]", 1.0),
    ("depth/rmse", "Inverse depth RMS error [px]", 1.0),
    ("instance/ap", "Instance AP [%]", 100.0),
)


def format_table(rows: list[tuple[str, str]], title: str) -> str:
    """Two-column plain-text table."""
    width = max([len(name) for name, _ in rows] + [len(title)])
    line = "-" * (width + 16)
    body = "\n".join(f"{name:<{width}}  {value:>12}" for name, value in rows)
    return f"{line}\n{title}\n{line}\n{body}\n{line}"


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


class MetricsTable(Callback):
    """Prints the final validation metrics after ``fit``, and after ``test`` the paper's columns
    followed by every other test metric.

    Args:
        per_class: also print per-class IoU/AP rows.
    """

    def __init__(self, per_class: bool = False) -> None:
        self.per_class = per_class
        self.last_table: str | None = None
        self._validated_at: tuple[int, int] | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The epoch and step the metrics belong to, numbered as in checkpoint names
        # (epoch=11 for the 12th epoch); after fit, trainer.current_epoch is one further.
        if not trainer.sanity_checking:
            self._validated_at = (trainer.current_epoch, trainer.global_step)

    def _rows(self, trainer: Trainer, prefix: str) -> list[tuple[str, str]]:
        rows = []
        for key, value in sorted(trainer.callback_metrics.items()):
            if not key.startswith(f"{prefix}/") or "/loss/" in key:
                continue
            if not self.per_class and key.count("/") > 2:
                continue
            rows.append((key, _fmt(float(value))))
        return rows

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rows = self._rows(trainer, "val")
        if rows:
            epoch, step = self._validated_at or (trainer.current_epoch, trainer.global_step)
            self.last_table = format_table(
                rows, f"Final validation metrics (epoch={epoch}, step={step})"
            )
            print("\n" + self.last_table, flush=True)

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The one table of `mtlscene test` (the CLI turns Lightning's own off when this
        # callback is there): the paper's columns, then every other test metric.
        metrics = trainer.callback_metrics
        rows, shown = [], set()
        for key, title, scale in PAPER_COLUMNS:
            value = metrics.get(f"test/{key}")
            if value is not None:
                rows.append((title, _fmt(float(value) * scale)))
                shown.add(f"test/{key}")
        paper = len(rows)
        rows += [(key, value) for key, value in self._rows(trainer, "test") if key not in shown]
        if rows:
            title = "Test results (the paper's columns first)" if paper else "Test results"
            self.last_table = format_table(rows, title)
            print("\n" + self.last_table, flush=True)
