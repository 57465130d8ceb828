"""The experiment runner end to end at the tests' tiny size."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import statistics
from pathlib import Path

import pytest
from csv_cells import assert_cells_match_results
from tiny_network import tiny_flops, tiny_parameters

from mtlscene.experiments import load_experiment, run_experiment
from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.definition import available_experiments
from mtlscene.experiments.runner import output_folder_lock
from mtlscene.experiments.summary import delta_m

CONF = Path(__file__).parent / "conf"


@pytest.fixture
def tiny_experiment(tmp_path):
    text = (CONF / "experiment_tiny.yaml").read_text().replace("TINY", str(CONF / "tiny.yaml"))
    path = tmp_path / "tiny_experiment.yaml"
    path.write_text(text)
    return path


def _table_cells(table: str, row: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {row} |"))
    return [cell.strip().strip("*") for cell in line.strip("|").split("|")]


def test_two_rows_two_seeds_end_to_end_resume_and_failure(tiny_experiment, tmp_path, capsys):
    out = tmp_path / "out"
    # Two runs at once: the scheduler's path (the default, one at a time, is the same loop).
    argv = ["run", str(tiny_experiment), "--out", str(out), "--jobs", "2"]
    assert experiment_main(argv) == 1  # one row fails
    printed = capsys.readouterr().out
    assert "[1/6] Uncertainty | seed 0" in printed and "left" in printed  # progress and ETA
    assert "failed 2" in printed
    for seed in (0, 1):
        log = out / "runs" / "broken" / f"seed{seed}" / "run.log"
        # The summary quotes the cause (the error line of the log), not the log's last line.
        cause = "ConfigError: model.active_tasks names ['no_such_task']"
        assert f"failed: Broken seed {seed}: exit status 1: mtlscene.errors.{cause}" in printed
        assert f"; log: {log}" in printed
        assert "no_such_task" in log.read_text()

    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["row"], r["seed"]) for r in rows) == [
        ("Uncertainty", "0"),
        ("Uncertainty", "1"),
        ("sem/depth 0.9/0.1", "0"),
        ("sem/depth 0.9/0.1", "1"),
    ]
    # Every cell is the value its run wrote to result.json.
    results = [json.loads(path.read_text()) for path in out.glob("runs/*/seed*/result.json")]
    assert_cells_match_results(out / "results.csv", results)
    learned = [r for r in rows if r["row"] == "Uncertainty"]
    for row in learned:
        # Two AdamW steps of lr 0.05 moved every s = log sigma^2 off 0 (the first alone by
        # 0.05), and each weight is its likelihood's 1/(k sigma^2): k = 1 for the Boltzmann
        # semantic task, 2 for the Gaussian instance and depth tasks (PAPER.md).
        for task, k in (("semantic", 1), ("instance", 2), ("depth", 2)):
            sigma = float(row[f"sigma/{task}"])
            assert abs(math.log(sigma)) > 0.005, task
            assert float(row[f"weight/{task}"]) == pytest.approx(1 / (k * sigma**2), rel=1e-5)
        # Each run records its cost (result.json "cost"), which the table summarises: the
        # tiny network's size, worked out from its layer shapes.
        assert int(row["cost/parameters"]) == tiny_parameters()[0]
        assert int(row["cost/flops_per_image"]) == tiny_flops()
        assert 0 < float(row["cost/median_step_s"]) < float(row["wall_time_s"])
    fixed = [r for r in rows if r["row"] != "Uncertainty"]
    semantic_depth = tiny_parameters(tasks=("semantic", "depth"))[0]
    assert {int(r["cost/parameters"]) for r in fixed} == {semantic_depth}
    assert {r["tasks"] for r in fixed} == {"semantic+depth"}
    assert {r["weight/depth"] for r in fixed} == {"0.1"}

    # The table's mean ± std are those of the CSV.
    table = (out / "table.md").read_text()
    cells = _table_cells(table, "Uncertainty")
    ious = [100 * float(r["test/semantic/miou"]) for r in learned]
    assert cells[2] == f"{statistics.fmean(ious):.2f} ± {statistics.stdev(ious):.2f}"
    depth = [float(r["test/depth/mae"]) for r in learned]
    assert cells[4] == f"{statistics.fmean(depth):.3f} ± {statistics.stdev(depth):.3f}"
    assert _table_cells(table, "Broken")[-1] == "0/2"
    assert "### Cost: mean ± std over seeds" in table
    assert not list(out.rglob("*.ckpt"))  # deleted once each result was written
    for name in ("tradeoff_semantic_depth.png", "sigma_evolution.png"):
        assert (out / name).stat().st_size > 10_000

    # A second invocation skips the finished runs and retries only the failed ones.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed*/result.json")}
    experiment = load_experiment(tiny_experiment)
    outcome = run_experiment(experiment, out, jobs=2, echo=lambda *_: None)  # both retries at once
    assert len(outcome["skipped"]) == 4 and not outcome["done"]
    assert len(outcome["failed"]) == 2
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # Resuming with other settings must not count the old runs as this experiment's.
    with pytest.raises(SystemExit, match=r"other arguments.*--trainer.max_steps=3.*another --out"):
        experiment_main(
            ["run", str(tiny_experiment), "--out", str(out), "--override", "trainer.max_steps=3"]
        )
    # And two runners cannot write into one folder at once.
    with output_folder_lock(out):
        with pytest.raises(SystemExit, match=f"pid {os.getpid()}.*another --out"):
            experiment_main(["run", str(tiny_experiment), "--out", str(out)])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing written meanwhile

    # Another experiment with the same configurations adopts those runs instead of training.
    renamed = dataclasses.replace(
        experiment,
        name="other",
        rows=(dataclasses.replace(experiment.rows[0], name="Learned"), experiment.rows[1]),
    )
    other = tmp_path / "other"
    outcome = run_experiment(renamed, other, reuse=[out], echo=lambda *_: None)
    assert len(outcome["reused"]) == 4 and not outcome["done"] and not outcome["failed"]
    with (other / "results.csv").open() as handle:
        adopted = {(r["row"], r["seed"]): r for r in csv.DictReader(handle)}
    with (out / "results.csv").open() as handle:
        original = {(r["row"], r["seed"]): r for r in csv.DictReader(handle)}
    for seed in ("0", "1"):
        assert (
            adopted[("Learned", seed)]["test/semantic/miou"]
            == (original[("Uncertainty", seed)]["test/semantic/miou"])
        )
    with pytest.raises(SystemExit, match="no runs/ folder there"):
        experiment_main(["run", str(tiny_experiment), "--out", str(other), "--reuse", "nowhere"])


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find child processes")
def test_timeout_and_sigterm_leave_no_run_process_behind(tiny_experiment, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    experiment = load_experiment(tiny_experiment)
    out = tmp_path / "timeout"
    only_first = dataclasses.replace(experiment, rows=experiment.rows[:1])
    outcome = run_experiment(only_first, out, seeds=1, timeout=1.0, echo=lambda *_: None)
    assert len(outcome["failed"]) == 1
    failure = (out / "runs" / "uncertainty" / "seed0" / "failed.json").read_text()
    assert "timed out after 1 s" in failure
    assert not _processes_mentioning(str(out))

    # SIGTERM to the runner stops the run it started, then the runner exits.
    out = tmp_path / "sigterm"
    runner = subprocess.Popen(
        [sys.executable, "-m", "mtlscene.experiments.cli", "run", str(tiny_experiment)]
        + ["--out", str(out), "--seeds", "1", "--rows", "Uncertainty"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spec = out / "runs" / "uncertainty" / "seed0" / "spec.json"
    deadline = time.monotonic() + 60
    while not _processes_mentioning(str(spec)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(spec)), "the run never started"
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) != 0
    assert not _processes_mentioning(str(spec))


def test_delta_m_by_hand():
    baselines = {"test/semantic/miou": 0.5, "test/instance/mae": 4.0, "test/depth/mae": 0.5}
    run = {"test/semantic/miou": 0.55, "test/instance/mae": 3.0, "test/depth/mae": 0.6}
    # IoU +10 % (better: -10), instance -25 % (better: -25), depth +20 % (worse: +20).
    assert delta_m(run, baselines) == pytest.approx((-10 - 25 + 20) / 3)
    assert delta_m({"test/depth/mae": 0.5}, baselines) == pytest.approx(0.0)


def test_shipped_experiments_load_with_the_papers_rows():
    assert {"table1", "sweeps"} <= set(available_experiments())
    table1 = load_experiment("table1")
    assert len(table1.rows) == 9 and table1.seeds >= 3
    sweeps = load_experiment("sweeps")
    class_weights = [
        r.weights["semantic"] for r in sweeps.rows if r.weights and "semantic" in r.weights
    ]
    assert class_weights == [1.0, 0.975, 0.95, 0.9, 0.85, 0.8, 0.7, 0.5, 0.2, 0.1, 0.0]
    instance_weights = [
        r.weights["instance"] for r in sweeps.rows if r.weights and "instance" in r.weights
    ]
    assert instance_weights == [1.0, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.025, 0.0]
    assert sum(not r.is_fixed for r in sweeps.rows) == 2


def test_bad_experiment_files_fail_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrows:\n  - {name: a, weighting: no_such_preset}\n")
    with pytest.raises(FileNotFoundError, match=re.escape("weighting/no_such_preset.yaml")):
        load_experiment(bad)
    bad.write_text("name: x\nrows:\n  - {name: a, wieghts: {semantic: 1}}\n")
    with pytest.raises(ValueError, match="unknown keys \\['wieghts'\\]"):
        load_experiment(bad)
    with pytest.raises(FileNotFoundError, match="table1"):
        load_experiment("no_such_experiment")
    with pytest.raises(SystemExit):
        experiment_main(["run", "table1", "--override", "no-equals-sign"])


def test_methods_experiment_has_every_weighting_method_and_the_single_task_rows():
    from mtlscene.weighting import WEIGHTING_METHODS

    presets = {row.weighting for row in load_experiment("methods").rows}
    expected = {"approx_optimal" if name == "fixed" else name for name in WEIGHTING_METHODS}
    assert expected | {"semantic_only", "instance_only", "depth_only"} <= presets


def test_wandb_runs_are_grouped_by_experiment(tiny_experiment, tmp_path):
    from mtlscene.cli.main import parse_config
    from mtlscene.experiments.runner import plan_runs, run_args

    experiment = load_experiment(tiny_experiment)
    run = plan_runs(experiment, tmp_path, seeds=2)[1]
    config = parse_config(run_args(experiment, run, [], wandb=True))
    assert config.trainer.logger.class_path == "mtlscene.loggers.OfflineFirstWandbLogger"
    assert config.trainer.logger.init_args.group == "tiny"
    assert config.trainer.logger.init_args.name == "uncertainty-seed1"
    assert config.seed_everything == 1 and config.data.init_args.seed == 1


def test_resuming_with_wandb_keeps_the_finished_runs(tiny_experiment, tmp_path):
    from mtlscene.experiments.plan import plan_runs, run_args
    from mtlscene.experiments.reuse import (
        OutputFolderError,
        check_finished_runs_match,
        write_spec,
    )
    from mtlscene.experiments.single_run import RESULT_FILE

    experiment = load_experiment(tiny_experiment)
    runs = plan_runs(experiment, tmp_path, seeds=1)
    for run in runs:  # finished earlier, logging to CSV
        run.run_dir.mkdir(parents=True)
        args = run_args(experiment, run, [], wandb=False)
        write_spec(run.run_dir, experiment.name, run.row.name, run.seed, args)
        (run.run_dir / RESULT_FILE).write_text("{}")

    # The logger trains nothing differently: resuming with --wandb keeps those runs...
    check_finished_runs_match(runs, {r.run_dir: run_args(experiment, r, [], True) for r in runs})
    lines = []
    outcome = run_experiment(
        experiment, tmp_path, seeds=1, wandb=True, summary=False, echo=lines.append
    )
    assert len(outcome["skipped"]) == len(runs) and not outcome["done"]
    assert any("not logged to W&B again" in line for line in lines)
    # ...while a training override still counts as another run.
    other = {r.run_dir: run_args(experiment, r, ["--trainer.max_steps=3"], True) for r in runs}
    with pytest.raises(OutputFolderError, match="max_steps=3"):
        check_finished_runs_match(runs, other)


def test_settling_compares_the_learned_weight_with_the_optimum_for_the_loss(tmp_path):
    import math

    from mtlscene.experiments.settling import (
        HISTORY_FILE,
        equilibrium_curves,
        final_settling,
        read_history,
        settling_lines,
    )

    # A Gaussian-like term (c = 0.5, k = 1): weight 0.5 exp(-s); the loss settles at 2.0,
    # so w* = 1 / (2 * 1 * 2.0) = 0.25, while s has only reached log 1 = 0 (weight 0.5).
    lines = ["step,epoch,event,task,s,sigma,weight,loss"]
    for step, s in zip(range(10, 110, 10), [0.5 - 0.05 * i for i in range(10)], strict=True):
        weight = 0.5 * math.exp(-s)
        lines.append(f"{step},0,step,depth,{s},{math.exp(s / 2)},{weight},2.0")
        lines.append(f"{step},0,step,fixed,0.0,1.0,1.0,3.0")  # s never moves: no curve
    lines.append("100,0,epoch,depth,0,1,0.5,2.0")
    (tmp_path / HISTORY_FILE).write_text("\n".join(lines) + "\n")
    history = read_history(tmp_path)
    assert len(history) == 20  # step rows only
    curves = equilibrium_curves(history)
    assert set(curves) == {"depth"}
    assert curves["depth"][-1] == (100, pytest.approx(0.25))
    weight, optimum = final_settling(history)["depth"]
    assert weight == pytest.approx(0.5 * math.exp(-0.05)) and optimum == pytest.approx(0.25)
    result = {"row": "Learned", "log_dir": str(tmp_path)}
    table = "\n".join(settling_lines([result, result], ["Learned", "Other"]))
    ratio = 0.5 * math.exp(-0.05) / 0.25
    assert f"| Learned | depth | {weight:.3f} | 0.250 | {ratio:.2f} ± 0.00 | 2 |" in table
