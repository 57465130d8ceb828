"""Task groupings that maximise total inter-task affinity (TAG's network selection).

A grouping splits the tasks into K disjoint groups, one network per group. Following TAG
(Fifty et al., NeurIPS 2021), a task's score in its group is the mean affinity onto it from
the other members, ``mean over i in G, i != j of Z(i -> j)``; a task alone in its group
scores 0; a grouping's score is the sum over tasks. The search is exhaustive over set
partitions (Bell(8) = 4140 partitions for 8 tasks), so it refuses more than
:data:`MAX_TASKS` tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAX_TASKS = 8


@dataclass(frozen=True)
class Grouping:
    """A partition of the tasks and its total affinity score."""

    groups: tuple[tuple[str, ...], ...]
    score: float

    def label(self) -> str:
        """``{semantic, depth} {instance}``."""
        return " ".join("{" + ", ".join(group) + "}" for group in self.groups)


def set_partitions(items: Sequence[int], k: int) -> Iterator[list[list[int]]]:
    """Every partition of ``items`` into exactly ``k`` non-empty blocks, each once.

    Blocks keep the items' order and are ordered by their first item.
    """
    items = list(items)
    if k < 1 or k > len(items):
        return
    if k == len(items):
        yield [[item] for item in items]
        return
    if k == 1:
        yield [items]
        return
    first, rest = items[0], items[1:]
    # The first item alone in a block ...
    for partition in set_partitions(rest, k - 1):
        yield [[first], *partition]
    # ... or added to one of the blocks of a k-block partition of the rest.
    for partition in set_partitions(rest, k):
        for index in range(len(partition)):
            yield [[first, *block] if i == index else block for i, block in enumerate(partition)]


def grouping_score(matrix: Sequence[Sequence[float]], groups: Sequence[Sequence[int]]) -> float:
    """TAG's total score of a partition given as blocks of task indices.

    Args:
        matrix: ``matrix[i][j] = Z(i -> j)``.
        groups: the blocks.
    """
    total = 0.0
    for group in groups:
        if len(group) < 2:
            continue
        for j in group:
            total += sum(matrix[i][j] for i in group if i != j) / (len(group) - 1)
    return total


def _check(matrix: Sequence[Sequence[float]], tasks: Sequence[str]) -> None:
    if len(tasks) > MAX_TASKS:
        raise ValueError(
            f"the grouping search is exhaustive over set partitions and takes at most "
            f"{MAX_TASKS} tasks, got {len(tasks)} ({', '.join(tasks)}); group a subset of them"
        )
    if len(matrix) != len(tasks) or any(len(row) != len(tasks) for row in matrix):
        raise ValueError(f"the affinity matrix must be {len(tasks)} x {len(tasks)} for {tasks}")


def rank_groupings(
    matrix: Sequence[Sequence[float]], tasks: Sequence[str], k: int
) -> list[Grouping]:
    """Every partition of ``tasks`` into ``k`` groups, best score first.

    Ties keep the enumeration order (deterministic), so the same matrix always suggests the
    same grouping.
    """
    _check(matrix, tasks)
    if not 1 <= k <= len(tasks):
        raise ValueError(f"groups must be between 1 and {len(tasks)} (the tasks), got {k}")
    ranked = [
        Grouping(
            tuple(tuple(tasks[i] for i in block) for block in blocks),
            grouping_score(matrix, blocks),
        )
        for blocks in set_partitions(range(len(tasks)), k)
    ]
    return sorted(ranked, key=lambda grouping: -grouping.score)


def groupings_by_size(
    matrix: Sequence[Sequence[float]], tasks: Sequence[str]
) -> dict[int, list[Grouping]]:
    """K -> the ranked groupings into K groups, for every K from 1 to the number of tasks."""
    return {k: rank_groupings(matrix, tasks, k) for k in range(1, len(tasks) + 1)}
