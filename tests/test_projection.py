"""The projected wall time printed before an experiment's runs: arithmetic, rate, the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_runs import FAKE_RUN

from mtlscene.experiments.definition import CONFIG_DIR, Experiment, Row
from mtlscene.experiments.executors import local
from mtlscene.experiments.executors.device_slots import DeviceSlots
from mtlscene.experiments.executors.local import LocalExecutor
from mtlscene.experiments.plan import PlannedRun
from mtlscene.experiments.projection import (
    Rate,
    choose_rate,
    measured_rate,
    projection_line,
    run_length,
)
from mtlscene.experiments.runner import run_experiment


def test_projection_arithmetic_runs_times_steps_over_rate_and_slots():
    line = projection_line([50_000] * 27, False, Rate(15.4, "rate from --steps-per-second"), 4)
    # 27 x 50,000 / 15.4 / 4 = 21,915.6 s = 6 h 05 min 16 s
    assert "27 runs x 50,000 steps / 15.4 steps/s / 4 at a time = 6h05m" in line
    assert "(rate from --steps-per-second; training steps only" in line
    # Runs of different lengths, and more slots than runs: 400 steps / 2 / 2 at once = 100 s.
    line = projection_line([100, 300], True, Rate(2.0, "measured"), 5, "2 run(s) on each ...")
    assert "at most 2 runs with 400 steps in all / 2 steps/s / 2 at a time" in line
    assert "= 1m40s" in line and "(2 run(s) on each ...)" in line


def test_projection_says_when_no_rate_or_no_step_count_is_known():
    assert "unknown: no step rate known yet" in projection_line([240], False, None, 2)
    assert "--steps-per-second RATE" in projection_line([240], False, None, 2)
    unknown = projection_line([240, None], False, Rate(1.0, "x"), 2)
    assert "unknown: the runs end by epochs" in unknown


def test_run_length_reads_configs_and_overrides_in_order(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump({"trainer": {"max_steps": 240, "max_epochs": -1}}))
    second.write_text(yaml.safe_dump({"data": {"batch_size": 8}}))
    args = ["--config", str(first), "--config", str(second)]
    assert run_length(args) == (240, -1)
    assert run_length([*args, "--trainer.max_steps=480"]) == (480, -1)
    assert run_length([*args, "--trainer.max_steps", "100", "--config", str(first)]) == (240, -1)
    budget = CONFIG_DIR / "budgets" / "gpu_paper.yaml"
    assert run_length(["--config", str(budget)]) == (50_000, -1)


def _finished(tmp_path: Path, name: str, cost: dict | None) -> PlannedRun:
    run = PlannedRun(Row(name), 0, tmp_path / name)
    run.run_dir.mkdir()
    result = {"row": name} if cost is None else {"row": name, "cost": cost}
    (run.run_dir / "result.json").write_text(json.dumps(result))
    return run


def test_measured_rate_is_the_median_over_finished_runs(tmp_path):
    runs = [
        _finished(tmp_path, "a", {"median_step_s": 0.1}),
        _finished(tmp_path, "b", {"median_step_s": 0.4}),
        _finished(tmp_path, "c", {"median_step_s": 0.2}),
        _finished(tmp_path, "d", None),  # recorded no cost: left out
        PlannedRun(Row("e"), 0, tmp_path / "e"),  # not finished
    ]
    assert measured_rate(runs) == (pytest.approx(5.0), 3)
    assert measured_rate(runs[3:]) is None
    assert choose_rate(None, (5.0, 3)).steps_per_second == 5.0
    configured = choose_rate(12.0, (5.0, 3))
    assert configured.steps_per_second == 12.0 and "measured 5" in configured.source


def test_runner_prints_the_projection_before_starting(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_CHILD", FAKE_RUN)  # fake runs: no training
    monkeypatch.setenv("FAKE_SLEEP", "0.05")
    monkeypatch.setenv("FAKE_FAIL_ROW", "b")
    base = tmp_path / "budget.yaml"
    base.write_text(yaml.safe_dump({"trainer": {"max_steps": 100, "max_epochs": -1}}))
    experiment = Experiment(
        "fake", (Row("a"), Row("b", overrides=("--trainer.max_steps=300",))), (str(base),), 2
    )
    out = tmp_path / "out"
    executor = LocalExecutor(jobs=None, slots=DeviceSlots(["0", "1"], runs_per_device=2))
    lines: list[str] = []
    run_experiment(experiment, out, executor=executor, summary=False, echo=lines.append)
    first = next(line for line in lines if line.startswith("projected wall time"))
    assert "unknown: no step rate known yet" in first
    started = next(index for index, line in enumerate(lines) if line.startswith("[1/4]"))
    assert lines.index(first) < started
    # Row b failed on both seeds; the next command retries them at the rate the two finished
    # runs measured (0.05 s a step): 2 x 300 steps / 20 steps/s / 2 at a time = 15 s.
    (out / "fixed").touch()
    lines.clear()
    run_experiment(experiment, out, executor=executor, summary=False, echo=lines.append)
    second = next(line for line in lines if line.startswith("projected wall time"))
    assert "2 runs x 300 steps / 20 steps/s / 2 at a time" in second
    assert "= 0m15s" in second and "median step time of 2 finished run(s)" in second
    assert "(2 run(s) on each of 2 GPU(s) (0,1))" in second
    lines.clear()
    run_experiment(experiment, out, executor=executor, summary=False, echo=lines.append)
    assert not any(line.startswith("projected wall time") for line in lines)  # nothing to run


def test_steps_per_second_option_reaches_the_runner(monkeypatch, tmp_path, capsys):
    from mtlscene.experiments import cli

    given = {}
    monkeypatch.setattr(cli, "run_experiment", lambda *a, **kw: given.update(kw) or {"failed": []})
    out = str(tmp_path / "out")
    assert cli.main(["run", "table1", "--out", out, "--steps-per-second", "15.4"]) == 0
    assert given["steps_per_second"] == 15.4 and given["executor"].jobs == 1
    with pytest.raises(SystemExit):
        cli.main(["run", "table1", "--out", out, "--steps-per-second", "0"])
    assert "--steps-per-second: takes a rate > 0" in capsys.readouterr().err
