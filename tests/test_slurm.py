"""The slurm executor against a real one-node SLURM (``bash .ci/slurm.sh start``; CI starts
it). Tiny runs: the tests' tiny config on tiny synthetic data, a few steps each."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mtlscene.experiments import load_experiment, run_experiment
from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.executors import make_executor
from mtlscene.experiments.executors.slurm import ATTEMPTS_FILE, JOB_FILE, squeue

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "conf" / "tiny.yaml"
LOCALHOST = ROOT / "configs" / "executors" / "localhost.yaml"


def _slurm_usable() -> bool:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return probe.returncode == 0 and any(
        state.strip("*") in ("idle", "mixed", "allocated") for state in probe.stdout.split()
    )


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not _slurm_usable(),
        reason="no running SLURM (sbatch/squeue/sinfo): start one with `bash .ci/slurm.sh start` "
        "(root; CI's .ci/run does)",
    ),
]


def _experiment(tmp_path: Path, rows: str, seeds: int = 1, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbase: [{TINY}]\nseeds: {seeds}\nrows:\n{rows}")
    return path


def _results_without_times(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        # Wall-clock figures differ between any two runs; everything else must match.
        row.pop("wall_time_s")
        row.pop("cost/median_step_s", None)
    return rows


def _job_ids(out: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["job_id"] for p in out.rglob(JOB_FILE))


class RunningCounter(threading.Thread):
    """Polls squeue and remembers the most jobs of one array seen running at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.most = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            running = [job for job, (state, _) in squeue().items() if state == "RUNNING"]
            self.most = max(self.most, len(running))
            time.sleep(0.2)


def _local_threads_as_in_the_jobs(monkeypatch: pytest.MonkeyPatch, executor) -> None:
    """A job trains on its ``cpus_per_task`` threads, a local run on its share of this
    machine's cores: reductions split over another number of threads differ in the last
    bits, so the local reference runs on the jobs' count."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(executor.config.cpus_per_task))


def test_array_runs_two_at_a_time_and_matches_the_local_executor(tmp_path, monkeypatch):
    rows = (
        "  - {name: Uncertainty, weighting: uncertainty}\n"
        '  - {name: "sem/depth 0.9/0.1", weights: {semantic: 0.9, depth: 0.1}}\n'
    )
    experiment = load_experiment(_experiment(tmp_path, rows, seeds=2))
    counter = RunningCounter()
    counter.start()
    executor = make_executor("slurm", LOCALHOST)  # array_parallelism: 2
    outcome = run_experiment(experiment, tmp_path / "slurm", executor=executor, echo=print)
    counter.stop.set()
    counter.join()
    assert len(outcome["done"]) == 4 and not outcome["failed"]
    assert counter.most == 2, f"at most {counter.most} of the 4 array jobs ran at once"
    assert len({job.split("_")[0] for job in _job_ids(tmp_path / "slurm")}) == 1  # one array

    _local_threads_as_in_the_jobs(monkeypatch, executor)
    run_experiment(experiment, tmp_path / "local", jobs=2, echo=print)
    assert _results_without_times(tmp_path / "slurm") == _results_without_times(tmp_path / "local")


def test_usr2_saves_the_signalled_step_requeues_once_and_ends_as_the_local_run(
    tmp_path, monkeypatch
):
    # 24 steps, validation after steps 8, 16 and 24 (the resumed attempt validates before
    # it ends), a DataLoader worker (SLURM signals it too), and no periodic checkpoint: what
    # the next attempt resumes from is the signal's.
    overrides = (
        '"--trainer.max_epochs=-1", "--trainer.max_steps=24", "--trainer.limit_train_batches=null",'
        ' "--trainer.check_val_every_n_epoch=4", "--trainer.deterministic=true",'
        ' "--data.num_workers=1"'
    )
    rows = f"  - {{name: Uncertainty, weighting: uncertainty, overrides: [{overrides}]}}\n"
    experiment = load_experiment(_experiment(tmp_path, rows))
    out = tmp_path / "signalled"
    no_periodic = ["checkpoint_every_n_steps=1000"]
    executor = make_executor("slurm", LOCALHOST, no_periodic, wait=False)
    run_experiment(experiment, out, executor=executor)
    run_dir = out / "runs" / "uncertainty" / "seed0"
    job = json.loads((run_dir / JOB_FILE).read_text())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the fit has started (its network summary)
        logs = [Path(job[name]) for name in ("stdout", "stderr")]
        if any("parameters (shared" in p.read_text(errors="replace") for p in logs if p.is_file()):
            break
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], check=True)
    # SLURM holds a requeued job for two minutes; let it start again now.
    while time.monotonic() < deadline:
        state = squeue().get(job["job_id"], ("gone", ""))[0]
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"jobid={job['job_id']}", "StartTime=now"])
            break
        time.sleep(0.2)
    executor = make_executor("slurm", LOCALHOST, no_periodic)
    outcome = run_experiment(experiment, out, executor=executor, echo=print)
    assert len(outcome["done"]) == 1, Path(job["stderr"]).read_text()[-3000:]
    stdout = Path(job["stdout"]).read_text()
    log = stdout + Path(job["stderr"]).read_text()
    assert "resuming from" in log and "requeued" in log.lower(), log[-3000:]
    # The main process alone requeued: one submitit handler call (its logger writes each
    # line to both logs), no worker exiting.
    assert stdout.count("Caught signal SIGUSR2") == 1, log[-3000:]
    assert "exited unexpectedly" not in log
    attempts = [json.loads(line) for line in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    assert [a["outcome"].split(":")[0] for a in attempts] == ["SIGUSR2", "finished"]
    signalled = int(attempts[0]["outcome"].split("step ")[1].split(",")[0])
    assert 1 <= signalled < 24  # saved at the step the signal arrived, not at step 0
    assert json.loads((run_dir / JOB_FILE).read_text())["job_id"] == job["job_id"]

    reference = tmp_path / "local"
    _local_threads_as_in_the_jobs(monkeypatch, executor)
    run_experiment(experiment, reference, echo=print)
    resumed = json.loads((run_dir / "result.json").read_text())
    uninterrupted = json.loads((reference / "runs/uncertainty/seed0/result.json").read_text())
    assert resumed["global_step"] == uninterrupted["global_step"] == 24
    for stage in ("val", "test", "sigma", "weight"):
        assert resumed[stage] == uninterrupted[stage], stage  # bit-identical
    total = sum(a["wall_time_s"] for a in attempts)
    assert total - 1.0 < resumed["wall_time_s"] <= total + 0.01  # both attempts count


def test_two_process_ddp_run_under_srun(tmp_path):
    ddp = '"--trainer.devices=2", "--trainer.strategy=ddp"'
    rows = f"  - {{name: DDP, weighting: uncertainty, overrides: [{ddp}]}}\n"
    experiment = load_experiment(_experiment(tmp_path, rows))
    out = tmp_path / "ddp"
    outcome = run_experiment(experiment, out, executor=make_executor("slurm", LOCALHOST))
    job = json.loads((out / "runs" / "ddp" / "seed0" / JOB_FILE).read_text())
    assert len(outcome["done"]) == 1, Path(job["stderr"]).read_text()[-3000:]
    logs = sorted(Path(job["stdout"]).parent.glob("*_log.err"))
    assert len(logs) == 2  # one per SLURM task
    text = "".join(log.read_text() for log in logs)
    assert "MEMBER: 1/2" in text and "MEMBER: 2/2" in text
    assert "gloo" in text


def test_rerun_while_pending_attaches_then_status_and_cancel(tmp_path, capsys):
    rows = "  - {name: Uncertainty, weighting: uncertainty}\n"
    path = _experiment(tmp_path, rows, seeds=2)
    out = tmp_path / "held"
    argv = ["run", str(path), "--out", str(out), "--executor", "slurm"]
    argv += ["--executor-config", str(LOCALHOST), "--slurm", "sbatch={hold: true}", "--no-wait"]
    assert experiment_main(argv) == 0
    first = _job_ids(out)
    assert len(first) == 2
    queued = set(squeue())  # by id: an earlier test's job may leave the queue meanwhile
    assert experiment_main(argv) == 0
    assert "0 run(s) submitted, 2 attached" in capsys.readouterr().out
    assert _job_ids(out) == first and not set(squeue()) - queued

    assert experiment_main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "2 pending" in status and first[0] in status
    assert experiment_main(["cancel", str(out)]) == 0
    assert "cancelled 2 job(s)" in capsys.readouterr().out
    deadline = time.monotonic() + 30
    while any(job in squeue() for job in first) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert experiment_main(["status", str(out)]) == 1
    status = capsys.readouterr().out
    assert "2 failed" in status  # cancelled: gone without a result
    assert "seed 0 failed; end of" in status  # each failed job's log tail follows


def test_nonexistent_partition_shows_slurms_error_and_submits_nothing(tmp_path, capsys):
    path = _experiment(tmp_path, "  - {name: Uncertainty, weighting: uncertainty}\n")
    out = tmp_path / "nowhere"
    # Compared by job id, not count: a job of an earlier test may still leave the queue now.
    queued = set(squeue())
    with pytest.raises(SystemExit) as stop:
        experiment_main(
            ["run", str(path), "--out", str(out), "--executor", "slurm"]
            + ["--executor-config", str(LOCALHOST), "--slurm", "partition=no_such_partition"]
        )
    message = str(stop.value)
    assert "invalid partition" in message.lower() and "partition" in message
    assert "Nothing was submitted" in message
    assert not list(out.rglob(JOB_FILE)) and not set(squeue()) - queued
    # One SLURM task per device: a config that says otherwise is refused before submitting.
    with pytest.raises(SystemExit, match="tasks_per_node=2 but the runs have trainer.devices=1"):
        experiment_main(
            ["run", str(path), "--out", str(out), "--executor", "slurm"]
            + ["--executor-config", str(LOCALHOST), "--slurm", "tasks_per_node=2"]
        )
    assert not list(out.rglob(JOB_FILE)) and not set(squeue()) - queued


def test_search_dispatches_trials_as_slurm_jobs(tmp_path):
    rows = (
        '  - {name: "sem only", weights: {semantic: 1, depth: 0}}\n'
        '  - {name: "depth only", weights: {semantic: 0, depth: 1}}\n'
        # A validation metric as the objective: no delta_m baselines to train first (the
        # local search test covers them); what is checked here is how trials are dispatched.
        "search:\n  tasks: [semantic, depth]\n  n_trials: 2\n  objective: val/depth/mae\n"
    )
    path = _experiment(tmp_path, rows, name="tiny_search")
    out = tmp_path / "search"
    argv = ["search", str(path), "--out", str(out), "--parallel", "2", "--seeds", "1"]
    argv += ["--executor", "slurm", "--executor-config", str(LOCALHOST)]
    assert experiment_main(argv) == 0
    # Trials train on search.trial_seed (1000), apart from the comparison's seeds.
    trials = sorted((out / "search" / "trials").glob(f"trial*/seed*/{JOB_FILE}"))
    assert len(trials) == 2  # each trial ran as its own SLURM job
    assert len({json.loads(p.read_text())["job_id"] for p in trials}) == 2
    with (out / "results.csv").open() as handle:
        assert "search best" in {row["row"] for row in csv.DictReader(handle)}
