"""Lightning's model summary without the "0 Total Flops" line and column of zeros.

Lightning counts FLOPs only for a module with an ``example_input_array``; otherwise it prints
``0 Total Flops``, which reads as a measurement. The line stays when FLOPs were counted.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks.model_summary import log
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table


class ModelSummary(LightningModelSummary):
    """The layer table and parameter counts; FLOPs only when they were measured."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        if not total_flops:  # a column of zeros is no measurement either
            summary_data = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters,
            trainable_parameters,
            model_size,
            total_training_modes,
            total_flops,
            *summary_data,
        )
        if not total_flops:
            table = "\n".join(line for line in table.splitlines() if "Total Flops" not in line)
        log.info("\n" + table)


__all__ = ["ModelSummary"]
