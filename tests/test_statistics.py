"""Paired differences over seeds: hand-computed intervals, the verdicts' wording at the
interval's boundary, and table.md's paired sections on a tiny made-up experiment."""

import math

import pytest
import yaml

from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.definition import Experiment, Row, load_experiment
from mtlscene.experiments.paired_table import claim, is_fixed
from mtlscene.experiments.results_csv import read_csv, write_columns
from mtlscene.experiments.statistics import (
    compare,
    format_mean_std,
    mean_std,
    paired_difference,
    seeds_needed,
    t_quantile,
)
from mtlscene.experiments.summary import summarize_from_csv, write_csv, write_table

# Student's t table, two-sided 95 %: t_{0.975, df}.
T_TABLE = {1: 12.706, 2: 4.303, 4: 2.776, 10: 2.228, 16: 2.120, 17: 2.110, 30: 2.042}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE.items()))
def test_t_quantile_matches_the_printed_table(df, expected):
    assert t_quantile(df) == pytest.approx(expected, abs=5e-4)


def test_paired_t_interval_by_hand():
    # Differences 2, 3, 1 on the shared seeds 0-2: mean 2, sd 1, half-width
    # t_{0.975,2} / sqrt(3) = 4.3027 / 1.7321 = 2.4841. Seed 3 (reference only) and seed 4
    # (NaN) are left out.
    row = {0: 3.0, 1: 5.0, 2: 4.0, 4: math.nan}
    reference = {0: 1.0, 1: 2.0, 2: 3.0, 3: 9.0, 4: 1.0}
    difference = paired_difference(row, reference)
    assert difference.seeds == (0, 1, 2)
    assert difference.mean == pytest.approx(2.0)
    assert difference.sd == pytest.approx(1.0)
    assert (difference.low, difference.high) == pytest.approx((-0.4841, 4.4841), abs=1e-4)
    assert not difference.excludes_zero
    # n = 4: t_{0.975,3} / 2 = 1.591 < 2, while n = 3 gives 2.484: four seeds.
    assert difference.seeds_needed == 4


def test_seeds_needed_from_the_t_table():
    # mean 1, sd 2: n = 17 gives 2.120 * 2 / sqrt(17) = 1.028 > 1; n = 18 gives
    # 2.110 * 2 / sqrt(18) = 0.995 < 1.
    assert seeds_needed(1.0, 2.0) == 18
    assert seeds_needed(0.0, 1.0) is None
    assert seeds_needed(1e-6, 1.0) is None  # more than MAX_SEEDS


@pytest.mark.parametrize(
    ("mean", "expected"),
    [
        (2.49, "worse at 3 seeds"),  # lower end +0.006: excludes 0
        (2.48, "not distinguishable at 3 seeds (the measured spread implies 4 seeds)"),
        (-2.49, "better at 3 seeds"),
        (-2.48, "not distinguishable at 3 seeds (the measured spread implies 4 seeds)"),
    ],
)
def test_the_verdict_switches_where_the_interval_reaches_zero(mean, expected):
    # Differences mean-1, mean, mean+1: half-width 2.4841, so 0 leaves the interval between
    # |mean| 2.48 and 2.49. A lower-is-better quantity (Δm): positive is worse.
    difference = paired_difference({0: mean - 1, 1: mean, 2: mean + 1}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert compare(difference, lower_is_better=True) == expected
    verdict = claim(difference)
    if "not distinguishable" in expected:
        assert verdict.startswith("not distinguishable at 3 seeds")
    else:
        assert ("does not hold" in verdict) == (mean > 0)


def test_one_common_seed_has_no_interval():
    difference = paired_difference({0: 2.0, 1: 3.0}, {0: 1.0})
    assert difference.n == 1 and math.isnan(difference.low)
    assert compare(difference, True).startswith("not distinguishable at 1 seed")


def test_mean_std_leaves_nan_out_and_prints_no_negative_zero():
    assert mean_std([1.0, math.nan, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))
    assert format_mean_std([-0.001, 0.0], digits=2) == "0.00 ± 0.00"
    assert format_mean_std([], empty="–") == "–"


# --- table.md on a made-up experiment -----------------------------------------------------
# Single-task baselines: IoU 0.20 and depth error 0.50. Every multi-task row keeps IoU at the
# baseline, so its Δm is 100 * (err - 0.5), in points: learned 0, 1, 2; fixed -2, -2, -2;
# other (DWA, not fixed) -3, -1, 1.
ERRORS = {
    "learned": [0.50, 0.51, 0.52],
    "fixed 0.9/0.1": [0.48, 0.48, 0.48],
    "other": [0.47, 0.49, 0.51],
}
EXPERIMENT = Experiment(
    name="tiny",
    rows=(
        Row("Seg only", weights={"semantic": 1.0}),
        Row("Depth only", weights={"depth": 1.0}),
        Row("learned", weighting="uncertainty"),
        Row("fixed 0.9/0.1", weights={"semantic": 0.9, "depth": 0.1}),
        Row("other", weighting="dwa"),
    ),
)


def _result(row: str, seed: int, test: dict[str, float], tasks: list[str]) -> dict:
    return {
        "row": row,
        "seed": seed,
        "tasks": tasks,
        "global_step": 10,
        "wall_time_s": 1.0,
        "test": test,
        "val": {},
        "sigma": {t: 1.0 for t in tasks},
        "weight": {t: 0.5 for t in tasks},
    }


@pytest.fixture
def results():
    runs = []
    for seed in range(3):
        runs.append(_result("Seg only", seed, {"test/semantic/miou": 0.20}, ["semantic"]))
        runs.append(_result("Depth only", seed, {"test/depth/mae": 0.50}, ["depth"]))
        for row, errors in ERRORS.items():
            test = {"test/semantic/miou": 0.20, "test/depth/mae": errors[seed]}
            runs.append(_result(row, seed, test, ["semantic", "depth"]))
    return runs


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_table_has_the_paired_section_and_the_best_fixed_verdicts(results, tmp_path):
    assert is_fixed(EXPERIMENT.rows[3]) and not is_fixed(EXPERIMENT.rows[4])
    table = write_table(results, EXPERIMENT, tmp_path / "table.md", 3).read_text()
    # The default reference of the semantic+depth rows: their first non-fixed row.
    assert "### Paired against learned: row − reference" in table
    # fixed - learned: Δm -2, -3, -4: mean -3, sd 1, interval -3 ± 2.48.
    fixed = _line(table, "| fixed 0.9/0.1 | 3 |")
    assert "-3.00 [-5.48, -0.52]" in fixed
    assert "-0.030 [-0.055, -0.005]" in fixed  # the depth error, in its own units
    assert fixed.endswith("Δm better at 3 seeds |")
    # other - learned: -3, -2, -1: mean -2, sd 1: the interval reaches +0.48.
    other = _line(table, "| other | 3 |")
    assert "-2.00 [-4.48, +0.48]" in other
    assert other.endswith(
        "Δm not distinguishable at 3 seeds (the measured spread implies 4 seeds) |"
    )
    # The paper's claim against the best fixed row (the only fixed one here):
    # learned - fixed = 2, 3, 4; other - fixed = -1, 1, 3 (sd 2, 18 seeds by the t table).
    assert (
        "- learned against fixed 0.9/0.1: Δm +3.00 [+0.52, +5.48] points: worse at 3 seeds: "
        "learned ≥ best fixed does not hold." in table
    )
    assert (
        "- other against fixed 0.9/0.1: Δm +1.00 [-3.97, +5.97] points: not distinguishable "
        "at 3 seeds (the measured spread implies 18 seeds), so neither shown nor refuted." in table
    )


def test_a_named_reference_and_metric_verdicts_without_single_task_rows(results, tmp_path):
    # No single-task rows: no Δm, so each main metric gets its own verdict.
    multi = [r for r in results if len(r["tasks"]) > 1]
    experiment = Experiment("tiny", EXPERIMENT.rows[2:], reference=("fixed 0.9/0.1",))
    table = write_table(multi, experiment, tmp_path / "table.md", 3).read_text()
    assert "### Paired against fixed 0.9/0.1" in table
    assert "### Paired against learned" not in table
    learned = _line(table, "| learned | 3 |")
    # IoU never differs (sd 0 and mean 0); the depth error is 0.03 higher: worse.
    assert "IoU % not distinguishable at 3 seeds" in learned
    assert "Inv. depth err px worse at 3 seeds" in learned
    assert "Learned against the best fixed" not in table  # no Δm to judge it on


def test_reference_naming_no_row_is_refused(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"name": "a"}], "reference": "b"}))
    with pytest.raises(ValueError, match=r"`reference` names \['b'\], which are not rows"):
        load_experiment(path)


def test_table_from_results_csv_equals_the_table_from_the_runs(results, tmp_path):
    for result in results:  # columns the heads declared, as result.json carries them
        result["table_metrics"] = {
            task: [
                {"key": key.split("/")[-1], "title": title, "higher_is_better": task == "semantic"}
            ]
            for task, key, title in (
                ("semantic", "test/semantic/miou", "mIoU (declared)"),
                ("depth", "test/depth/mae", "depth err (declared)"),
            )
            if key in result["test"]
        }
    expected = write_table(results, EXPERIMENT, tmp_path / "runs.md", 3).read_text()
    write_csv(results, tmp_path / "results.csv")
    write_columns(results, tmp_path / "columns.json")
    again = write_table(read_csv(tmp_path / "results.csv"), EXPERIMENT, tmp_path / "csv.md", 3)
    assert "mIoU (declared)" in expected
    assert again.read_text() == expected


def test_summarize_from_csv_keeps_the_settling_check_and_adds_the_paired_section(results, tmp_path):
    write_csv(results, tmp_path / "results.csv")
    rows = [
        {"name": r.name, **({"weights": r.weights} if r.weights else {"weighting": r.weighting})}
        for r in EXPERIMENT.rows
    ]
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({"name": "tiny", "rows": rows}))
    settling = "### Has sigma settled? Final learned weight\n\n| kept from the runs |\n\n"
    (tmp_path / "table.md").write_text("### old table\n\nstale\n\n" + settling)
    assert experiment_main(["summarize", str(tmp_path), "--from-csv"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "stale" not in table and "| kept from the runs |" in table
    assert table.index("### Paired against learned") < table.index("### Has sigma settled?")
    # Rewriting again changes nothing (the kept section is not duplicated).
    summarize_from_csv(tmp_path)
    assert (tmp_path / "table.md").read_text() == table


def test_summarize_from_csv_without_results_says_which_file(tmp_path):
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({"rows": [{"name": "a"}]}))
    with pytest.raises(SystemExit, match="results.csv does not exist"):
        experiment_main(["summarize", str(tmp_path), "--from-csv"])


def test_grouping_report_pairs_each_trained_grouping_with_all_in_one():
    from mtlscene.experiments.grouping_experiment import report_lines

    # Two tasks, one grouping into 2 groups: each alone. Depth error of "all in one" per
    # seed 0.50, 0.50, 0.50 and of depth alone 0.45, 0.50, 0.55 (mean 0.50, the baseline):
    # Δm (the mean of IoU's 0 and depth's relative change) of the grouping minus all in
    # one = 100 * (-0.05, 0, +0.05) / 0.5 / 2 = -5, 0, +5 points: mean 0, sd 5, half-width
    # 4.3027 * 5 / sqrt(3) = 12.42: not distinguishable.
    runs = []
    for seed, err in enumerate([0.45, 0.50, 0.55]):
        runs.append(_result("Seg only", seed, {"test/semantic/miou": 0.20}, ["semantic"]))
        runs.append(_result("Depth only", seed, {"test/depth/mae": err}, ["depth"]))
        test = {"test/semantic/miou": 0.20, "test/depth/mae": 0.50}
        runs.append(_result("all", seed, test, ["semantic", "depth"]))
    alone = [["semantic"], ["depth"]]
    decision = {
        "measured_row": "all",
        "groups": 2,
        "tasks": ["semantic", "depth"],
        "seeds": [0, 1, 2],
        "steps_per_run": [1] * 3,
        "lookahead": "sgd",
        "mean": [[0.0] * 2] * 2,
        "std": [[0.0] * 2] * 2,
        "ranked": {"2": [{"groups": alone, "score": 0.0}]},
        "suggested": {"groups": alone, "score": 0.0},
        "check": "all",
    }
    text = "\n".join(report_lines(runs, decision))
    assert (
        "- suggested grouping against all in one: Δm +0.00 [-12.42, +12.42] points: not "
        "distinguishable at 3 seeds (no number of seeds up to 1000 separates a difference "
        "this small)." in text
    )
    assert "- {semantic} {depth} against all in one: Δm +0.00 [-12.42, +12.42]" in text


def test_best_fixed_is_taken_among_rows_trained_as_long(results, tmp_path):
    # A fixed row trained twice as long is far better (Δm -10) but is not the learned
    # row's best fixed: that comparison would credit the weights with the extra steps.
    for seed in range(3):
        test = {"test/semantic/miou": 0.20, "test/depth/mae": 0.40}
        longer = _result("fixed, 2x steps", seed, test, ["semantic", "depth"])
        results.append(longer | {"global_step": 20})
    rows = (*EXPERIMENT.rows, Row("fixed, 2x steps", weights={"semantic": 0.9, "depth": 0.1}))
    experiment = Experiment("tiny", rows)
    table = write_table(results, experiment, tmp_path / "table.md", 3).read_text()
    assert "- learned against fixed 0.9/0.1: Δm +3.00 [+0.52, +5.48] points" in table
    assert "against fixed, 2x steps" not in table


def test_paired_delta_m_counts_every_delta_metric_not_only_the_shown_ones(tmp_path):
    # Task b has two Δm metrics; the paired section shows only its first (err), but its Δm
    # difference must be the table's: over err and rel. Baselines a 0.5, err 2.0, rel 0.2.
    declared = {
        "a": [{"key": "acc", "title": "Acc %", "higher_is_better": True, "scale": 100.0}],
        "b": [
            {"key": "err", "title": "Err", "higher_is_better": False},
            {"key": "rel", "title": "Rel", "higher_is_better": False},
        ],
    }
    runs = []
    for seed, rel in enumerate([0.20, 0.22, 0.24]):
        for row, test, tasks in (
            ("a only", {"test/a/acc": 0.5}, ["a"]),
            ("b only", {"test/b/err": 2.0, "test/b/rel": 0.2}, ["b"]),
            ("ref", {"test/a/acc": 0.5, "test/b/err": 2.0, "test/b/rel": 0.2}, ["a", "b"]),
            ("row", {"test/a/acc": 0.5, "test/b/err": 2.0, "test/b/rel": rel}, ["a", "b"]),
        ):
            result = _result(row, seed, test, tasks)
            result["table_metrics"] = {t: declared[t] for t in tasks}
            runs.append(result)
    rows = (Row("a only"), Row("b only"), Row("ref", weighting="uncertainty"), Row("row"))
    table = write_table(runs, Experiment("two", rows), tmp_path / "t.md", 3).read_text()
    # rel +0, +10, +20 % -> Δm (over acc, err, rel) 0, +3.33, +6.67: mean +3.33, sd 3.33,
    # half-width 4.3027 * 3.333 / sqrt(3) = 8.28.
    assert "| row | 3 | +3.33 [-4.95, +11.61] |" in table
