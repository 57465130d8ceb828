"""Executors and the weight search without a cluster: bad input stops before anything runs,
and a tiny search on the local executor scores on validation only and resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mtlscene.experiments.cli import main as experiment_main

TINY = Path(__file__).parent / "conf" / "tiny.yaml"


def _experiment(tmp_path: Path, search: str = "", seeds: int = 1) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: tiny_search\nbase: [{TINY}]\nseeds: {seeds}\nrows:\n"
        '  - {name: "sem only", weights: {semantic: 1, depth: 0}}\n'
        '  - {name: "depth only", weights: {semantic: 0, depth: 1}}\n'
        "  - {name: learned, weighting: uncertainty, tasks: [semantic, depth]}\n" + search
    )
    return path


SEARCH = (
    'search:\n  tasks: [semantic, depth]\n  n_trials: 2\n  baselines: ["sem only", "depth only"]\n'
)


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        experiment_main(argv)
    assert stop.value.code not in (0, None)
    captured = capsys.readouterr()
    return f"{stop.value.code} {captured.err} {captured.out}"


def test_bad_executor_config_key_stops_naming_the_key(tmp_path, capsys):
    config = tmp_path / "cluster.yaml"
    config.write_text("partition: gpu\ngpus_per_nod: 1\n")
    out = tmp_path / "out"
    message = _fails(
        ["run", str(_experiment(tmp_path)), "--out", str(out), "--executor", "slurm"]
        + ["--executor-config", str(config)],
        capsys,
    )
    assert "unknown key 'gpus_per_nod'" in message and str(config) in message
    assert not (out / "runs").exists()
    message = _fails(
        ["run", str(_experiment(tmp_path)), "--out", str(out), "--executor", "slurm"]
        + ["--slurm", "partitoin=x"],
        capsys,
    )
    assert "--slurm 'partitoin=x'" in message


def test_no_sbatch_on_path_stops_before_submitting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "out"
    message = _fails(
        ["run", str(_experiment(tmp_path)), "--out", str(out), "--executor", "slurm"], capsys
    )
    assert "`sbatch` is not on PATH" in message and "--executor slurm" in message
    assert not (out / "runs").exists()


def test_search_space_without_tasks_and_parallel_zero_stop(tmp_path, capsys):
    empty = _experiment(tmp_path, "search:\n  tasks: []\n  baselines: ['sem only']\n")
    out = tmp_path / "out"
    message = _fails(["search", str(empty), "--out", str(out)], capsys)
    assert "search.tasks=[]" in message and "at least two tasks" in message
    unknown = _experiment(tmp_path, "search:\n  tasks: [semantic, normals]\n")
    message = _fails(["search", str(unknown), "--out", str(out)], capsys)
    assert "search.tasks names ['normals']" in message
    on_test = _experiment(
        tmp_path, SEARCH + "  objective: test/semantic/miou\n  direction: maximize\n"
    )
    message = _fails(["search", str(on_test), "--out", str(out)], capsys)
    assert "validation split only" in message
    message = _fails(["search", str(_experiment(tmp_path, SEARCH)), "--parallel", "0"], capsys)
    assert "--parallel" in message
    assert not out.exists() or not any(out.rglob("spec.json"))


def test_search_scores_on_validation_resumes_and_compares_the_best_on_test(tmp_path, capsys):
    experiment = _experiment(tmp_path, SEARCH)
    out = tmp_path / "out"
    assert experiment_main(["search", str(experiment), "--out", str(out), "--parallel", "2"]) == 0
    # Trials and the Δm baselines train on the trials' seed (1000) and never see the test
    # split; the comparison retrains everything on its own seeds (here seed 0).
    trial_results = sorted((out / "search" / "trials").glob("trial*/seed*/result.json"))
    baseline_results = sorted((out / "search" / "baselines").glob("*/seed*/result.json"))
    assert len(trial_results) == 2 and len(baseline_results) == 2
    for path in trial_results + baseline_results:
        result = json.loads(path.read_text())
        assert result["seed"] == 1000 and path.parent.name == "seed1000"
        assert "test" not in result and result["val"]  # selection never sees the test split
        assert "skip_test" in json.loads((path.parent / "spec.json").read_text())
    with (out / "search" / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    best = min(trials, key=lambda t: float(t["objective"]))
    with (out / "results.csv").open() as handle:
        compared = {row["row"]: row for row in csv.DictReader(handle)}
    assert set(compared) == {"sem only", "depth only", "learned", "search best"}
    assert {row["seed"] for row in compared.values()} == {"0"}
    assert float(compared["search best"]["weight/semantic"]) == pytest.approx(
        float(best["weight/semantic"]), abs=1e-4
    )
    assert "search best" in (out / "table.md").read_text()
    assert (out / "search" / "weights_tried.png").is_file()
    assert (out / "search" / "objective_by_trial.png").is_file()
    capsys.readouterr()

    # The study is in the journal: asking for one trial more trains exactly one more.
    assert experiment_main(["search", str(experiment), "--out", str(out), "--n-trials", "3"]) == 0
    printed = capsys.readouterr().out
    assert "2/3 trials finished" in printed
    assert len(list((out / "search" / "trials").glob("trial*/seed1000/result.json"))) == 3
    assert "0 to run" in printed or "4 already finished" in printed


def test_requeue_checkpoint_resumes_exactly_even_when_due_at_an_epoch_end(tmp_path):
    """What a requeued SLURM job does, without SLURM: crash, resume from the periodic
    checkpoint, end where the uninterrupted run ends (2 batches an epoch, a checkpoint
    due every 2 steps: each one falls due on an epoch's last batch)."""
    import lightning.pytorch as pl
    import torch

    from mtlscene.cli.main import build_cli
    from mtlscene.experiments.executors.attempts import job_args

    class CrashAt(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 6:
                raise RuntimeError("simulated preemption")

    def fit(run_dir: Path, callbacks=(), ckpt_path=None):
        args = ["--config", str(TINY), "--trainer.max_epochs=-1", "--trainer.max_steps=8"]
        args += ["--trainer.limit_train_batches=null", "--trainer.deterministic=true"]
        args += ["--trainer.check_val_every_n_epoch=4", f"--trainer.default_root_dir={run_dir}"]
        cli = build_cli(job_args(args, run_dir, 2), run=False)
        cli.trainer.callbacks.extend(callbacks)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        return cli

    reference = fit(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="simulated preemption"):
        fit(tmp_path / "cut", [CrashAt()])
    checkpoint_path = tmp_path / "cut" / "requeue" / "requeue.ckpt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["global_step"] == 5  # due at 2 (an epoch's end): taken at 3, then 5
    assert not list(checkpoint_path.parent.glob("*.partial"))
    resumed = fit(tmp_path / "cut", ckpt_path=str(checkpoint_path))
    assert resumed.trainer.global_step == reference.trainer.global_step == 8
    expected, actual = reference.model.state_dict(), resumed.model.state_dict()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-6, msg=key)


def test_shipped_search_experiments_load():
    from mtlscene.experiments import load_experiment
    from mtlscene.experiments.search import load_search

    two = load_search(load_experiment("search_semantic_depth"))
    assert two.tasks == ("semantic", "depth") and two.n_trials >= 24
    assert two.objective == "delta_m" and two.sampler == "tpe"
    three = load_search(load_experiment("search_three_tasks"))
    assert three.tasks == ("semantic", "instance", "depth")
    rows = {row.name for row in load_experiment("search_three_tasks").rows}
    assert set(three.baselines) <= rows and "3-task uncertainty" in rows


def test_pruning_reports_to_the_journal_and_stops_a_trial_behind_the_median(tmp_path):
    from mtlscene.experiments.pruning import TrialPruning, objective_value
    from mtlscene.experiments.search import SearchSpec, open_study

    spec = SearchSpec(tasks=("semantic", "depth"), objective="val/depth/mae", pruning=True)
    study = open_study(spec, "pruned", tmp_path)
    for _ in range(4):  # finished trials that were at 1.0 after 10 steps
        trial = study.ask()
        trial.report(1.0, step=10)
        study.tell(trial, 1.0)
    journal = str(tmp_path / "search" / "study.journal")

    def callback(trial):
        return TrialPruning(journal, "pruned", trial._trial_id, str(tmp_path), "val/depth/mae")

    behind, ahead = study.ask(), study.ask()
    assert callback(behind).check({"val/depth/mae": 3.0}, step=10)
    assert not callback(ahead).check({"val/depth/mae": 0.5}, step=10)
    # Δm over [key, single-task value, higher is better]: IoU +10 % (-10), error +20 % (+20).
    terms = [["val/semantic/miou", 0.5, True], ["val/depth/mae", 0.5, False]]
    metrics = {"val/semantic/miou": 0.55, "val/depth/mae": 0.6}
    assert objective_value(metrics, None, terms) == pytest.approx(5.0)
