"""Sizes given as options (``[height, width]``, batch size, workers) checked once, the option
named."""

from __future__ import annotations

from collections.abc import Sequence


def height_width(value: Sequence[int] | None, option: str) -> tuple[int, int] | None:
    """``value`` as ``(height, width)``; None stays None.

    Raises:
        ValueError: naming ``option`` and the fix, unless two positive integers are given.
    """
    if value is None:
        return None
    items = [value] if isinstance(value, int | float | str) else list(value)
    try:
        height, width = (int(item) for item in items)
    except (TypeError, ValueError):
        raise ValueError(
            f"{option} must be [height, width] (two positive integers, e.g. [128, 256]), "
            f"got {value!r}"
        ) from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{option} must be positive [height, width], got {value!r}")
    return height, width


def whole_number(value: int, option: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; ValueError naming ``option`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{option} must be a whole number >= {minimum}, got {value!r}")
    return value


__all__ = ["height_width", "whole_number"]
