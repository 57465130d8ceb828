"""Draw the package's rooms and the imports between them (docs/architecture/rooms.png).

The graph is read from the code's own imports (every ``import`` and ``from ... import`` of
``mtlscene.*``, inside functions too), so the picture cannot drift from the code:
``tests/test_architecture.py`` checks the committed ``rooms.json`` against a fresh reading and
asserts the rules the picture shows (no import loops, nothing importing upwards).

    python docs/architecture/draw.py        # rewrite rooms.json and rooms.png
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "mtlscene"
DATASETS = ("cityscapes", "nyuv2", "folder")
# What each room is for, as the picture labels it (a room missing here fails the test).
PURPOSE = {
    "cli": "the mtlscene and mtlscene-data commands",
    "experiments": "runner, executors, tables, search",
    "trainers": "the LightningModule",
    "callbacks": "logging, checkpoints, pictures",
    "tasks": "TaskHead plugins + registry",
    "weighting": "one file per method",
    "models": "ResNet + ASPP encoder",
    "postprocess": "instances, panoptic",
    "relationships": "gradients, affinity, grouping",
    "metrics": "torchmetrics per task",
    "uncertainty": "per-pixel likelihood math",
    "evaluation": "official CityScapes scripts",
    "viz": "colour maps, panels, figures",
    "loggers": "W&B helpers",
    "data": "shared: io, loaders, check report",
    "data/checkers": "a dataset's checks by name",
    "data/cityscapes": "CityScapes + synthetic",
    "data/nyuv2": "NYUv2 + synthetic indoor",
    "data/folder": "your own folder data",
    "errors": "one-line user errors",
    "describe": "one-line summaries",
    "filelock": "a lock between processes",
    "moved_modules": "old module paths",
}


def room_of(module: str) -> str:
    """The room of a dotted module: its top-level package, or a dataset folder of ``data``."""
    parts = module.split(".")[1:]
    if not parts:
        return "mtlscene"
    if parts[0] == "data" and len(parts) > 1 and parts[1] in DATASETS:
        return f"data/{parts[1]}"
    if parts[:2] == ["data", "checkers"]:
        return "data/checkers"  # above the datasets: picks one by name
    return parts[0]


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_paths(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    return {module_of(path): path for path in sorted(package.rglob("*.py"))}


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ``mtlscene`` modules it imports (a name imported from a package counts
    as its submodule when one of that name exists)."""
    modules = module_paths(package)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        graph[module]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name in modules and name != module and name.startswith("mtlscene."):
                    graph[module].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def rooms(graph: dict[str, set[str]]) -> dict[str, dict]:
    """Room -> its lines of code and the rooms it imports (``mtlscene/__init__`` left out)."""
    result: dict[str, dict] = {}
    paths = module_paths()
    for module, targets in graph.items():
        room = room_of(module)
        if room in ("mtlscene", "__main__"):
            continue
        path = paths[module]
        entry = result.setdefault(room, {"lines": 0, "imports": set()})
        entry["lines"] += len(path.read_text().splitlines())
        entry["imports"] |= {room_of(t) for t in targets} - {room, "mtlscene"}
    return {
        room: {"lines": entry["lines"], "imports": sorted(entry["imports"])}
        for room, entry in sorted(result.items())
    }


def floors(house: dict[str, dict]) -> dict[str, int]:
    """Floor of each room: one above the highest room it imports (rooms in a loop share one)."""
    floor: dict[str, int] = {}

    def height(room: str, seen: frozenset[str]) -> int:
        if room in floor:
            return floor[room]
        below = [height(r, seen | {room}) for r in house[room]["imports"] if r not in seen]
        floor[room] = 1 + max(below, default=-1)
        return floor[room]

    for room in house:
        height(room, frozenset())
    return floor


def implied(house: dict[str, dict]) -> set[tuple[str, str]]:
    """Arrows a longer path already implies (a -> b where a reaches b through another room):
    left out of the picture, as they would hide the layering under crossing lines."""

    def reaches(start: str, goal: str, skip: tuple[str, str]) -> bool:
        seen, todo = set(), [start]
        while todo:
            room = todo.pop()
            for nxt in house[room]["imports"]:
                if (room, nxt) == skip or nxt in seen:
                    continue
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    return {
        (room, target)
        for room, entry in house.items()
        for target in entry["imports"]
        if reaches(room, target, (room, target))
    }


def draw(house: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    floor = floors(house)
    by_floor: dict[int, list[str]] = defaultdict(list)
    for room in sorted(house, key=lambda r: (floor[r], r)):
        by_floor[floor[room]].append(room)
    width = max(len(r) for r in by_floor.values())
    figure, axes = plt.subplots(figsize=(2.6 * width + 1, 1.25 * len(by_floor) + 1))
    centre: dict[str, tuple[float, float]] = {}
    for level, names in by_floor.items():
        offset = (width - len(names)) / 2
        for i, room in enumerate(names):
            centre[room] = (2.6 * (offset + i) + 1.3, 1.25 * level + 0.6)
    hidden = implied(house)
    for room, entry in house.items():
        for target in entry["imports"]:
            if (room, target) in hidden:
                continue
            (x0, y0), (x1, y1) = centre[room], centre[target]
            axes.add_patch(
                FancyArrowPatch(
                    (x0, y0 - 0.3), (x1, y1 + 0.3), arrowstyle="-|>", mutation_scale=9,
                    color="#9aa5b1", lw=0.7, connectionstyle="arc3,rad=0.08", zorder=1,
                )
            )  # fmt: skip
    for room, (x, y) in centre.items():
        colour = "#dbeafe" if room.startswith("data") else "#f1f5f9"
        axes.add_patch(
            FancyBboxPatch(
                (x - 1.15, y - 0.3), 2.3, 0.6, boxstyle="round,pad=0.02",
                facecolor=colour, edgecolor="#334155", lw=1, zorder=2,
            )
        )  # fmt: skip
        lines = house[room]["lines"]
        name = f"{room}/" if (PACKAGE / room).is_dir() else f"{room}.py"
        axes.text(x, y + 0.1, f"{name}  ({lines:,} lines)",
                  ha="center", va="center", fontsize=9, weight="bold", zorder=3)  # fmt: skip
        axes.text(x, y - 0.14, PURPOSE.get(room, "?"), ha="center", va="center", fontsize=8,
                  zorder=3)  # fmt: skip
    axes.set_xlim(0, 2.6 * width)
    axes.set_ylim(0, 1.25 * len(by_floor) + 0.2)
    axes.axis("off")
    axes.set_title(
        "mtlscene's rooms: an arrow is an import, and every arrow points down\n"
        f"({len(hidden)} arrows that a longer path implies are not drawn; rooms.json lists all)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    graph = imports()
    loops = cycles(graph)
    if loops:
        sys.exit(f"import loops: {loops}")
    house = rooms(graph)
    (HERE / "rooms.json").write_text(json.dumps(house, indent=1) + "\n")
    draw(house, HERE / "rooms.png")
    print(f"{len(house)} rooms -> {HERE / 'rooms.png'}")


if __name__ == "__main__":
    main()
