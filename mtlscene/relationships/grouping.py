"""Task groupings that maximise total inter-task affinity, disjoint or overlapping.

Both use TAG's group score (Fifty et al., NeurIPS 2021): a task's score in a group ``G`` is
the mean affinity onto it from the other members, ``mean over i in G, i != j of
Z(i -> j)``; a task alone scores 0.

- **Disjoint partition** (`rank_groupings`): the tasks are split into K disjoint
  groups, one network per group, each task trained and served by its only group; the score
  is the sum over tasks. This is a restriction of TAG's selection, ours: every task is
  trained exactly once. Exhaustive over set partitions (Bell(8) = 4140 for 8 tasks), so it
  refuses more than `MAX_TASKS` tasks.
- **Overlapping selection** (`rank_overlapping_groupings`), TAG's network selection:
  K groups are chosen among all non-empty subsets of the tasks, every task in at least
  one; a task may be trained in several groups and is served by the chosen group that
  scores it best; the score is ``sum over tasks j of max over chosen G containing j of
  score_j(G)``. Exhaustive over the C(2^T - 1, K) choices, so it refuses more than
  `MAX_CHOICES` of them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAX_TASKS = 8
# The overlapping search looks at C(2^T - 1, K) choices of groups: 8 tasks and K = 2 are
# 32385 (a fraction of a second); K = 3 would be 2.7 million.
MAX_CHOICES = 200_000


@dataclass(frozen=True)
class Grouping:
    """A partition of the tasks and its total affinity score."""

    groups: tuple[tuple[str, ...], ...]
    score: float
    # Overlapping selections only: task -> the index of the group that serves it.
    serves: tuple[tuple[str, int], ...] = ()

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


def member_score(matrix: Sequence[Sequence[float]], group: Sequence[int], j: int) -> float:
    """TAG's score of task ``j`` in ``group``: the mean affinity onto it from the others."""
    if len(group) < 2:
        return 0.0
    return sum(matrix[i][j] for i in group if i != j) / (len(group) - 1)


def grouping_score(matrix: Sequence[Sequence[float]], groups: Sequence[Sequence[int]]) -> float:
    """TAG's total score of a partition given as blocks of task indices.

    Args:
        matrix: ``matrix[i][j] = Z(i -> j)``.
        groups: the blocks.
    """
    return sum(member_score(matrix, group, j) for group in groups for j in group)


def overlapping_score(
    matrix: Sequence[Sequence[float]], groups: Sequence[Sequence[int]]
) -> tuple[float, list[int]]:
    """TAG's score of chosen (possibly overlapping) groups, and each task's serving group.

    Each task counts once, with its best score among the chosen groups that hold it.

    Args:
        matrix: ``matrix[i][j] = Z(i -> j)``.
        groups: the chosen groups (task indices); together they must hold every task.

    Returns:
        The score and, per task, the index in ``groups`` of the group serving it (the first
        among equals).
    """
    total, serving = 0.0, []
    for j in range(len(matrix)):
        options = [(member_score(matrix, g, j), -n) for n, g in enumerate(groups) if j in g]
        if not options:
            raise ValueError(f"task {j} is in none of the groups {groups}")
        best, negative_index = max(options)
        total += best
        serving.append(-negative_index)
    return total, serving


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


def rank_overlapping_groupings(
    matrix: Sequence[Sequence[float]], tasks: Sequence[str], k: int
) -> list[Grouping]:
    """Every choice of ``k`` distinct groups covering ``tasks`` (overlap allowed), best first.

    TAG's network selection: ``Grouping.serves`` says which chosen group serves each task.
    Among equal scores, fewer task-trainings (the groups' sizes summed) come first, then the
    enumeration order (deterministic).
    """
    _check(matrix, tasks)
    size = len(tasks)
    subsets = [[t for t in range(size) if mask >> t & 1] for mask in range(1, 2**size)]
    if not 1 <= k <= len(subsets):
        raise ValueError(f"groups must be between 1 and {len(subsets)} (2^T - 1), got {k}")
    choices = math.comb(len(subsets), k)
    if choices > MAX_CHOICES:
        raise ValueError(
            f"the overlapping selection is exhaustive over C(2^{size} - 1, {k}) = {choices} "
            f"choices of groups, at most {MAX_CHOICES}; ask for fewer groups or tasks"
        )
    ranked = []
    for chosen in itertools.combinations(subsets, k):
        if len({t for group in chosen for t in group}) < size:
            continue
        score, serving = overlapping_score(matrix, chosen)
        ranked.append(
            (
                -score,
                sum(len(group) for group in chosen),
                Grouping(
                    tuple(tuple(tasks[i] for i in group) for group in chosen),
                    score,
                    tuple((tasks[j], serving[j]) for j in range(size)),
                ),
            )
        )
    ranked.sort(key=lambda item: item[:2])
    return [grouping for _, _, grouping in ranked]
