"""The house keeps its shape: no import loops, every import points down, the datasets stand
apart, and the architecture page's picture is drawn from today's imports."""

import json
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs" / "architecture"
draw = runpy.run_path(str(DOCS / "draw.py"))
GRAPH = draw["imports"]()
HOUSE = draw["rooms"](GRAPH)


def test_no_module_imports_itself_through_others():
    assert draw["cycles"](GRAPH) == []


def test_the_loop_finder_finds_a_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert draw["cycles"](graph) == [["a", "b", "c"]]


def test_every_import_between_rooms_points_down():
    floor = draw["floors"](HOUSE)
    upward = [
        (room, target)
        for room, entry in HOUSE.items()
        for target in entry["imports"]
        if floor[target] >= floor[room]
    ]
    assert upward == []


@pytest.mark.parametrize(
    "room",
    ["data", "data/cityscapes", "data/nyuv2", "data/folder", "tasks", "models", "metrics",
     "weighting", "postprocess", "viz", "uncertainty", "evaluation"],
)  # fmt: skip
def test_data_and_plugins_know_nothing_of_the_trainer_the_cli_or_experiments(room):
    assert {"trainers", "callbacks", "cli", "experiments"}.isdisjoint(HOUSE[room]["imports"])


@pytest.mark.parametrize("dataset", ["data/nyuv2", "data/folder"])
def test_datasets_do_not_import_each_other(dataset):
    others = {"data/cityscapes", "data/nyuv2", "data/folder"} - {dataset}
    assert others.isdisjoint(HOUSE[dataset]["imports"])


def test_the_drawn_rooms_are_todays_and_every_room_is_named_on_the_page():
    committed = json.loads((DOCS / "rooms.json").read_text())
    fresh = {room: entry["imports"] for room, entry in HOUSE.items()}
    assert {room: entry["imports"] for room, entry in committed.items()} == fresh, (
        "the imports between rooms changed: run `python docs/architecture/draw.py` and "
        "commit rooms.json and rooms.png"
    )
    page = (DOCS / "index.md").read_text()
    missing = [room for room in HOUSE if f"`{room}" not in page]
    assert missing == [], f"docs/architecture/index.md does not name {missing}"
    assert set(HOUSE) <= set(draw["PURPOSE"])
