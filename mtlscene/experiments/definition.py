"""Experiment definitions: rows, each a composition of config files and overrides.

An experiment is a YAML file (the shipped ones live in ``configs/experiments/``)::

    name: table1
    description: The paper's Table 1 on synthetic data.
    base: [experiments/budget_cpu.yaml]      # config files every row starts from
    seeds: 3
    rows:
      - name: Segmentation only
        weighting: semantic_only               # configs/weighting/<name>.yaml
      - name: 2-task uncertainty (seg+depth)
        tasks: [semantic, depth]               # model.active_tasks
        weighting: uncertainty
      - name: "sem/depth 0.9/0.1"
        weights: {semantic: 0.9, depth: 0.1}   # FixedWeighting on exactly these tasks
      - name: Something else
        configs: [trainer/bf16.yaml]           # more files, relative to configs/
        overrides: ["--model.weighting.init_args.lr=0.1"]
    published: nyuv2     # optional: published rows printed under the table
    reference: [3-task uncertainty]   # optional: the rows the others are paired against
                         # (default: per task set, its first row with non-fixed weights)
    grouping: {measured_row: 3-task uncertainty, groups: 2}   # optional: see
                         # grouping_experiment.py (affinity -> suggested groups, trained)

Config paths are relative to the ``configs/`` folder of the project (or absolute).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mtlscene.experiments.published import load_published

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENT_DIR = CONFIG_DIR / "experiments"
_ROW_KEYS = {"name", "configs", "weighting", "tasks", "weights", "overrides"}
# What a grouping stage trains to check its suggestion (grouping_experiment.py).
CHECKS = ("suggested", "all")


@dataclass(frozen=True)
class Row:
    """One line of an experiment's table.

    Args:
        name: the row's title in the table.
        configs: extra config files composed after the experiment's base, in order.
        weighting: a weighting preset by name (``configs/weighting/<name>.yaml``).
        tasks: the active tasks (``model.active_tasks``); None keeps the config's.
        weights: fixed weights per task (a FixedWeighting); their tasks become the active
            tasks unless ``tasks`` is given. A weight of 0 switches a task off.
        overrides: command-line style overrides, applied last.
    """

    name: str
    configs: tuple[str, ...] = ()
    weighting: str | None = None
    tasks: tuple[str, ...] | None = None
    weights: dict[str, float] | None = None
    overrides: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """A file-system safe name for the row's run directories."""
        return re.sub(r"[^A-Za-z0-9.]+", "_", self.name).strip("_").lower()

    @property
    def is_fixed(self) -> bool:
        """Whether the row's weights are constant (a fixed-weight point of a trade-off)."""
        return self.weights is not None

    def config_args(self) -> list[str]:
        """The row's part of the command line (after the experiment's base configs)."""
        args: list[str] = []
        for config in self.configs:
            args += ["--config", str(resolve_config(config))]
        if self.weighting is not None:
            args += ["--config", str(resolve_config(f"weighting/{self.weighting}.yaml"))]
        tasks = self.tasks
        if self.weights is not None:
            tasks = tasks or tuple(self.weights)
            weighting = {
                "class_path": "mtlscene.weighting.FixedWeighting",
                "init_args": {"weights": dict(self.weights)},
            }
            args += [f"--model.weighting={json.dumps(weighting)}"]
        if tasks is not None:
            args += [f"--model.active_tasks={json.dumps(list(tasks))}"]
        return args + list(self.overrides)


@dataclass(frozen=True)
class GroupingSpec:
    """The ``grouping`` key of an experiment.

    Args:
        measured_row: the row whose runs measure the affinity (all tasks, TaskAffinity on).
        groups: K, the number of groups (networks) of the suggested grouping.
        check: "suggested" trains the suggested grouping's groups; "all" those of every
            grouping into K groups.
    """

    measured_row: str
    groups: int = 2
    check: str = "suggested"


def parse_grouping(raw: Any, path: Path, rows: Sequence[Row]) -> GroupingSpec:
    """The ``grouping`` key of the experiment file ``path``, checked against its rows."""
    if not isinstance(raw, Mapping) or "measured_row" not in raw:
        raise ValueError(
            f"{path}: `grouping` takes a mapping like {{measured_row: <row name>, groups: 2}}"
        )
    unknown = sorted(set(raw) - {"measured_row", "groups", "check"})
    if unknown:
        raise ValueError(
            f"{path}: `grouping` has unknown keys {unknown}; it takes measured_row, groups "
            "and check"
        )
    check = raw.get("check", "suggested")
    if check not in CHECKS:
        raise ValueError(f"{path}: grouping.check must be one of {CHECKS}, got {check!r}")
    names = [row.name for row in rows]
    if raw["measured_row"] not in names:
        raise ValueError(
            f"{path}: grouping.measured_row {raw['measured_row']!r} is not a row; rows: {names}"
        )
    groups = raw.get("groups", 2)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{path}: grouping.groups must be a whole number >= 1, got {groups!r}")
    return GroupingSpec(str(raw["measured_row"]), groups, check)


@dataclass(frozen=True)
class Experiment:
    """A named list of rows run over seeds on a common base configuration."""

    name: str
    rows: tuple[Row, ...]
    base: tuple[str, ...] = ()
    seeds: int = 3
    description: str = ""
    source: Path | None = None
    published: str | None = None
    # Train the task groups the affinity suggests (grouping_experiment.py).
    grouping: GroupingSpec | None = None
    # Rows the others of their task set are paired against in table.md (paired_table.py).
    reference: tuple[str, ...] = ()

    def base_args(self) -> list[str]:
        args: list[str] = []
        for config in self.base:
            args += ["--config", str(resolve_config(config))]
        return args


def resolve_config(path: str) -> Path:
    """A config path relative to ``configs/`` (or absolute); fails naming the file."""
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = CONFIG_DIR / candidate
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "weighting").glob("*.yaml")))
        raise FileNotFoundError(
            f"config file {candidate} does not exist (named {path!r} in an experiment); "
            f"paths are relative to {CONFIG_DIR}. Weighting presets: {known}"
        )
    return candidate


def available_experiments() -> list[str]:
    """Names of the shipped experiments."""
    return sorted(
        p.stem for p in EXPERIMENT_DIR.glob("*.yaml") if "rows" in p.read_text(encoding="utf-8")
    )


def load_experiment(name_or_path: str | Path) -> Experiment:
    """Load a shipped experiment by name (``table1``) or any experiment YAML by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = EXPERIMENT_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = available_experiments()
        close = difflib.get_close_matches(str(name_or_path), shipped, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise FileNotFoundError(
            f"no experiment {str(name_or_path)!r}{hint}: not a file and not one of "
            f"{shipped} in {EXPERIMENT_DIR}"
        )
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not spec.get("rows"):
        raise ValueError(f"{path}: an experiment needs a non-empty `rows` list")
    rows = []
    for index, raw in enumerate(spec["rows"]):
        unknown = set(raw) - _ROW_KEYS
        if unknown or "name" not in raw:
            raise ValueError(
                f"{path}: row {index} has unknown keys {sorted(unknown)} or no `name`; "
                f"a row takes {sorted(_ROW_KEYS)}"
            )
        rows.append(
            Row(
                name=str(raw["name"]),
                configs=tuple(raw.get("configs") or ()),
                weighting=raw.get("weighting"),
                tasks=tuple(raw["tasks"]) if raw.get("tasks") else None,
                weights={k: float(v) for k, v in raw["weights"].items()}
                if raw.get("weights")
                else None,
                overrides=tuple(raw.get("overrides") or ()),
            )
        )
    names = [row.slug for row in rows]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: row names must be unique, repeated: {duplicates}")
    for row in rows:  # fail now, not an hour into the experiment
        row.config_args()
    if spec.get("published"):
        load_published(str(spec["published"]))
    grouping = None
    if spec.get("grouping") is not None:
        grouping = parse_grouping(spec["grouping"], path, rows)
    reference = spec.get("reference") or ()
    reference = (reference,) if isinstance(reference, str) else tuple(reference)
    unknown = [name for name in reference if name not in {row.name for row in rows}]
    if unknown:
        raise ValueError(
            f"{path}: `reference` names {unknown}, which are not rows; it takes row names "
            f"from {[row.name for row in rows]}"
        )
    return Experiment(
        name=str(spec.get("name", path.stem)),
        rows=tuple(rows),
        base=tuple(spec.get("base") or ()),
        seeds=int(spec.get("seeds", 3)),
        description=str(spec.get("description", "")),
        source=path,
        published=spec.get("published"),
        grouping=grouping,
        reference=tuple(str(name) for name in reference),
    )
