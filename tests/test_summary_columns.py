"""Tables follow the heads' declared columns; Δm in three published conventions."""

import math

import pytest

from mtlscene.experiments.columns import Column, experiment_columns
from mtlscene.experiments.definition import Experiment, Row
from mtlscene.experiments.delta import delta_m, delta_p, delta_per_task, single_task_baselines
from mtlscene.experiments.summary import write_table
from mtlscene.tasks import TableMetric

# Two tasks, three metrics: "a" has one (higher better), "b" two (lower better).
COLUMNS = [
    Column("test/a/acc", "Acc %", 100.0, True, "a"),
    Column("test/b/err", "Err", 1.0, False, "b", 3),
    Column("test/b/rel", "Rel", 1.0, False, "b", 3),
    Column("test/b/extra", "Extra", 1.0, False, "b", in_delta=False),
]
BASELINES = {"test/a/acc": 0.50, "test/b/err": 2.0, "test/b/rel": 0.20}
RUN = {"test/a/acc": 0.55, "test/b/err": 1.0, "test/b/rel": 0.30, "test/b/extra": 9.0}
# Signed relative changes (positive = worse): a: -10 %; b: -50 % and +50 %.


def test_nash_mtl_delta_m_is_the_mean_over_all_metrics():
    assert delta_m(RUN, BASELINES, COLUMNS) == pytest.approx((-10 - 50 + 50) / 3)


def test_mtan_delta_is_per_task():
    assert delta_per_task(RUN, BASELINES, COLUMNS) == pytest.approx({"a": -10.0, "b": 0.0})


def test_libmtl_delta_p_averages_within_tasks_then_flips_the_sign():
    # Task means -10 and 0, mean -5, sign flipped: +5 (higher is better).
    assert delta_p(RUN, BASELINES, COLUMNS) == pytest.approx(5.0)


def test_the_conventions_differ_when_tasks_have_different_metric_counts():
    run = {"test/a/acc": 0.50, "test/b/err": 1.0, "test/b/rel": 0.10}  # b improves 50 %
    assert delta_m(run, BASELINES, COLUMNS) == pytest.approx(-100 / 3)
    assert delta_p(run, BASELINES, COLUMNS) == pytest.approx(25.0)


def test_missing_metrics_and_baselines_are_left_out():
    assert delta_m({"test/a/acc": 0.55}, BASELINES, COLUMNS) == pytest.approx(-10.0)
    assert math.isnan(delta_m({}, BASELINES, COLUMNS))
    assert math.isnan(delta_p({"test/b/err": 1.0}, {}, COLUMNS))


def _result(row, tasks, test, table_metrics=None):
    result = {
        "row": row,
        "seed": 0,
        "tasks": tasks,
        "test": test,
        "val": {},
        "sigma": {},
        "weight": {},
        "global_step": 1,
        "wall_time_s": 1.0,
        "log_dir": "none",
    }
    if table_metrics is not None:
        result["table_metrics"] = table_metrics
    return result


def test_columns_come_from_the_heads_and_old_results_get_the_papers():
    normal = [
        TableMetric("mean_angle", "Mean°", False).as_dict(),
        TableMetric("within_30", "<30 %", True, scale=100.0).as_dict(),
    ]
    results = [
        _result("N", ["normal"], {"test/normal/mean_angle": 20.0}, {"normal": normal}),
        _result("Old", ["semantic"], {"test/semantic/miou": 0.3, "test/instance/ap": 0.1}),
    ]
    keys = [c.key for c in experiment_columns(results)]
    # Δm metrics first (task by task), then the others (AP is not in the paper's Δm).
    assert keys == [
        "test/normal/mean_angle",
        "test/normal/within_30",
        "test/semantic/miou",
        "test/instance/ap",
    ]
    assert {c.key: c.in_delta for c in experiment_columns(results)}["test/instance/ap"] is False


def test_a_custom_tasks_table_has_its_columns_and_all_three_deltas(tmp_path):
    metrics = {
        "a": [TableMetric("acc", "Acc %", True, scale=100.0).as_dict()],
        "b": [
            TableMetric("err", "Err", False, digits=3).as_dict(),
            TableMetric("rel", "Rel", False, digits=3).as_dict(),
        ],
    }
    both = {"a": metrics["a"], "b": metrics["b"]}
    results = [
        _result("A only", ["a"], {"test/a/acc": 0.50}, {"a": metrics["a"]}),
        _result("B only", ["b"], {"test/b/err": 2.0, "test/b/rel": 0.2}, {"b": metrics["b"]}),
        _result("Both", ["a", "b"], RUN, both),
    ]
    experiment = Experiment("custom", tuple(Row(r["row"]) for r in results))
    table = write_table(results, experiment, tmp_path / "table.md", seeds=1).read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Loss"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Loss",
        "Weights",
        "Acc %",
        "Err",
        "Rel",
        "Δm % (↓)",
        "Δ a % (↓)",
        "Δ b % (↓)",
        "Δp % (↑)",
        "seeds",
    ]
    both_line = next(line for line in table.splitlines() if line.startswith("| Both |"))
    cells = [c.strip().strip("*") for c in both_line.strip("|").split("|")]
    assert cells[2] == "55.00 ± 0.00" and cells[3] == "1.000 ± 0.000"
    assert cells[5:9] == ["-3.33 ± 0.00", "-10.00 ± 0.00", "0.00 ± 0.00", "5.00 ± 0.00"]
    single = next(line for line in table.splitlines() if line.startswith("| A only |"))
    assert single.count(" - ") >= 4  # no Δ for the reference rows


def test_baselines_come_from_single_task_runs():
    results = [
        _result("A", ["a"], {"test/a/acc": 0.4}),
        _result("A", ["a"], {"test/a/acc": 0.6}),
        _result("AB", ["a", "b"], {"test/a/acc": 0.9, "test/b/err": 1.0}),
    ]
    assert single_task_baselines(results, COLUMNS) == pytest.approx({"test/a/acc": 0.5})


def test_the_table_shows_the_figures_drawn_beside_it(tmp_path):
    metrics = {
        "a": [TableMetric("acc", "Acc %", True, scale=100.0).as_dict()],
        "b": [TableMetric("err", "Err", False, digits=3).as_dict()],
    }
    results = [
        _result("A only", ["a"], {"test/a/acc": 0.50}, {"a": metrics["a"]}),
        _result("B only", ["b"], {"test/b/err": 2.0}, {"b": metrics["b"]}),
        _result("Both", ["a", "b"], {"test/a/acc": 0.55, "test/b/err": 1.0}, metrics),
    ]
    experiment = Experiment("figures", tuple(Row(r["row"]) for r in results))
    bare = write_table(results, experiment, tmp_path / "bare.md", seeds=1).read_text()
    assert "### Figures" not in bare and "![" not in bare
    # A trade-off drawn when the columns came in the other order still shows.
    for name in ("tradeoff_b_a.png", "sigma_evolution.png", "unrelated.png"):
        (tmp_path / name).write_bytes(b"png")
    table = write_table(results, experiment, tmp_path / "table.md", seeds=1).read_text()
    images = [line for line in table.splitlines() if line.startswith("![")]
    assert [line[line.index("](") + 2 : -1] for line in images] == [
        "tradeoff_b_a.png",
        "sigma_evolution.png",
    ]
    # Right after the main table's note.
    assert table.index("Bold: best mean") < table.index("### Figures")
