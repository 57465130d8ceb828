"""Published results shipped as data (``mtlscene/experiments/published/<benchmark>.yaml``),
printed under an experiment's own rows so a reader sees where the literature stands.

They come from other architectures, training lengths and data (the real NYUv2, not our
synthetic rooms): orientation, never a comparison of methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mtlscene.experiments.columns import Column

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"


def available_benchmarks() -> list[str]:
    """Names of the shipped published-results files."""
    return sorted(p.stem for p in PUBLISHED_DIR.glob("*.yaml"))


def load_published(benchmark: str) -> dict[str, Any]:
    """The published tables of a benchmark; fails naming the known ones."""
    path = PUBLISHED_DIR / f"{benchmark}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no published results {benchmark!r} (an experiment's `published:` key); "
            f"shipped: {available_benchmarks()} in {PUBLISHED_DIR}"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for table in data.get("tables", []):
        for row in table.get("rows", []):
            if len(row["values"]) != len(data["metrics"]):
                raise ValueError(
                    f"{path}: row {row['method']!r} of {table['name']!r} has "
                    f"{len(row['values'])} values for {len(data['metrics'])} metrics"
                )
    return data


def published_lines(benchmark: str, columns: Sequence[Column]) -> list[str]:
    """Markdown tables of the published rows in ``columns``' order (same titles and units:
    shares in %, as published)."""
    data = load_published(benchmark)
    index = {metric: i for i, metric in enumerate(data["metrics"])}
    shown = [c for c in columns if c.key.removeprefix("test/") in index]
    lines: list[str] = []
    for table in data.get("tables", []):
        convention = table.get("delta_convention", "nash_mtl")
        delta_title = "Δp % (↑)" if convention == "libmtl" else "Δm % (↓)"
        header = ["Method (published)", *[c.title for c in shown], delta_title]
        lines += [
            "",
            f"**Published, {table['name']}** (another architecture, training and the real "
            f"data: for orientation only). Source: {table['source']}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for row in table.get("rows", []):
            values = [row["values"][index[c.key.removeprefix("test/")]] for c in shown]
            cells = [
                f"{v:.{c.digits}f}" if v is not None else "-"
                for v, c in zip(values, shown, strict=True)
            ]
            delta = row.get("delta_m")
            cells.append("-" if delta is None else f"{delta:+.2f}")
            lines.append("| " + " | ".join([f"{row['method']} (published)", *cells]) + " |")
    return lines
