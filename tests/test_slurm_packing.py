"""SLURM jobs that pack K runs on each GPU of a node (``runs_per_device``).

What is submitted (fake sbatch, no cluster), what a packed job does inside (fake runs
and made-up GPU ids on the CPU: the placement, a failure, a stop signal passed on to every
run and one requeue), and one packed job on the real one-node test cluster.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from fake_runs import by_device, max_overlap
from test_slurm_submission import SBATCH, SQUEUE

from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.definition import Row
from mtlscene.experiments.executors import ExecutorConfigError, slurm, slurm_commands
from mtlscene.experiments.executors import slurm_packed as packed
from mtlscene.experiments.executors.slurm import (
    ATTEMPTS_FILE,
    JOB_FILE,
    SlurmExecutor,
    load_slurm_config,
)
from mtlscene.experiments.executors.slurm_packed import REQUEUE_EXIT, PackedSlurmJob
from mtlscene.experiments.plan import PlannedRun, RunJob

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "conf" / "tiny.yaml"
LOCALHOST = ROOT / "configs" / "executors" / "localhost.yaml"

# A fake run of a packed job (argv: SPEC.json N): records what it saw, then sleeps until
# FAKE_SLEEP has passed or USR2 arrives (then it exits as a run stopped to requeue does);
# the row "fails" fails at once.
FAKE_CHILD = rf"""
import json, os, signal, sys, time
spec = json.load(open(sys.argv[1]))
run_dir = spec["run_dir"]
got = []
signal.signal(signal.SIGUSR2, lambda signum, frame: got.append(signum))
start = time.time()
open(os.path.join(run_dir, "ready"), "w").close()
fail = spec["row"] == "fails"
while not fail and not got and time.time() < start + float(os.environ["FAKE_SLEEP"]):
    time.sleep(0.01)
seen = {{"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time(),
        "threads": os.environ.get("OMP_NUM_THREADS"), "signal": got[0] if got else None}}
json.dump(seen, open(os.path.join(run_dir, "seen.json"), "w"))
if got:
    sys.exit({REQUEUE_EXIT})
if fail:
    print("fake failure"); sys.exit(1)
json.dump({{"row": spec["row"]}}, open(os.path.join(run_dir, "result.json"), "w"))
"""


# -- what is submitted -------------------------------------------------------------------
@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch and squeue that answer as test_slurm_submission's do."""
    folder = tmp_path / "fake_slurm"
    folder.mkdir()
    scripts = {"sbatch": SBATCH, "squeue": SQUEUE, "scancel": "#!/bin/bash\n"}
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    monkeypatch.setattr(slurm_commands, "RETRY_DELAYS_S", (0.01,))
    monkeypatch.setattr(slurm, "PREFLIGHT_RETRY_DELAYS_S", (0.01,))
    return folder


def _run(tmp_path: Path, seeds: int, *options: str, overrides: str = "") -> list[str]:
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: tiny\nbase: [{TINY}]\nseeds: {seeds}\nrows:\n"
        f"  - {{name: Uncertainty, weighting: uncertainty, overrides: [{overrides}]}}\n"
    )
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--executor", "slurm"]
    return [*argv, "--no-wait", *options]


def test_runs_go_out_in_groups_of_gpus_times_k_one_job_each(tmp_path, fake_slurm, capsys):
    options = ["--slurm", "gpus_per_node=2", "--slurm", "array_parallelism=1"]
    options += ["--runs-per-device", "2", "--steps-per-second", "10"]
    argv = _run(tmp_path, 5, *options, "--override", "trainer.max_steps=20")
    assert experiment_main(argv) == 0
    # The projection counts the runs of each job: 1 job x 2 GPUs x 2 runs at once.
    assert "/ 4 at a time (2 run(s) on each of 2 GPU(s) of a job, 1 job(s) at once)" in (
        capsys.readouterr().out
    )
    script = (fake_slurm / "submitted.sh").read_text().splitlines()
    for line in ("--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=2", "--requeue"):
        assert f"#SBATCH {line}" in script, line
    assert "#SBATCH --array=0-1%1" in script  # 5 runs: a job of 4 and a job of 1
    assert not any("OMP_NUM_THREADS" in line for line in script)  # shared out per run inside
    preflight = (fake_slurm / "sbatch_calls").read_text().splitlines()[0]
    assert "--gpus-per-node=2" in preflight and "--ntasks-per-node=1" in preflight
    runs = sorted((tmp_path / "out" / "runs" / "uncertainty").glob("seed*"))
    records = [json.loads((run / JOB_FILE).read_text()) for run in runs]
    assert [r["job_id"] for r in records] == ["4242_0"] * 4 + ["4242_1"]
    assert [r["runs_in_job"] for r in records] == [4] * 4 + [1]
    # Each run keeps its own log; the job's log is kept beside it.
    assert [r["stdout"] for r in records] == [str(run / "run.log") for run in runs]
    assert all(r["job_stderr"].endswith("_log.err") for r in records)
    calls = []
    for index in (0, 1):
        with next((tmp_path / "out").glob(f"slurm/**/4242_{index}_submitted.pkl")).open("rb") as f:
            calls.append(pickle.load(f).function)
    assert [len(call.spec_paths) for call in calls] == [4, 1]
    assert calls[0].spec_paths == [str(run / "spec.json") for run in runs[:4]]
    assert calls[0].runs_per_device == 2


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (["runs_per_device=2"], "packs runs on the GPUs of a whole node, but gpus_per_node is"),
        (["runs_per_device=2", "gpus_per_node=0"], "set gpus_per_node to the GPUs each job"),
        (["runs_per_device=2", "gpus_per_node=4", "nodes=2"], "packs runs on one node"),
        (["runs_per_device=0", "gpus_per_node=4"], "runs_per_device is a whole number"),
        (["runs_per_device=2", "gpus_per_node=4", "tasks_per_node=4"], "one task that starts"),
    ],
)
def test_inconsistent_packing_options_are_refused_in_one_line(options, refusal):
    with pytest.raises(ExecutorConfigError, match=refusal) as refused:
        load_slurm_config(None, options)
    assert "\n" not in str(refused.value)


def test_multi_device_runs_and_a_search_cannot_be_packed(tmp_path, fake_slurm):
    ddp = '"--trainer.devices=2", "--trainer.strategy=ddp"'
    argv = _run(tmp_path, 1, "--slurm", "gpus_per_node=4", "--runs-per-device", "2", overrides=ddp)
    with pytest.raises(SystemExit, match="packs single-device runs .* trainer.devices=2"):
        experiment_main(argv)
    assert not (fake_slurm / "sbatch_calls").exists()  # refused before asking SLURM
    assert not list((tmp_path / "out").rglob("spec.json"))
    executor = SlurmExecutor(load_slurm_config(None, ["gpus_per_node=4", "runs_per_device=2"]))
    trial = RunJob("s", PlannedRun(Row("t"), 0, tmp_path / "out" / "runs" / "t" / "seed0"), [])
    with pytest.raises(ExecutorConfigError, match="a search starts its trials one at a time"):
        executor.start(trial)


# -- inside a packed job -----------------------------------------------------------------
@pytest.fixture
def packed_job(tmp_path, monkeypatch):
    """Specs of fake runs, a job seeing made-up GPUs 5 and 6, and signals restored after."""
    monkeypatch.setattr(packed, "_CHILD", FAKE_CHILD)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("FAKE_SLEEP", "0.6")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM)}

    def specs(rows: list[str]) -> list[str]:
        paths = []
        for index, row in enumerate(rows):
            run_dir = tmp_path / "runs" / f"{row}{index}"
            run_dir.mkdir(parents=True)
            (run_dir / "spec.json").write_text(json.dumps({"run_dir": str(run_dir), "row": row}))
            paths.append(str(run_dir / "spec.json"))
        return paths

    yield specs
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _seen(paths: list[str]) -> list[dict]:
    return [json.loads((Path(p).parent / "seen.json").read_text()) for p in paths]


def test_packed_job_keeps_k_per_gpu_uses_every_gpu_and_a_failure_frees_its_slot(packed_job):
    paths = packed_job(["fails", "a", "b", "c", "d", "e", "done"])
    Path(paths[-1]).with_name("result.json").write_text("{}")  # finished by an earlier attempt
    with pytest.raises(RuntimeError, match="1 of 6 run"):  # the job ends failed, naming it
        PackedSlurmJob(paths, 100, runs_per_device=2)()
    assert all(Path(p).with_name("result.json").is_file() for p in paths[1:])
    assert not Path(paths[-1]).with_name("seen.json").exists()  # not run again
    seen = _seen(paths[:-1])
    devices = by_device(seen)
    assert set(devices) == {"5", "6"}  # every GPU, named as the job sees them
    overlaps = {device: max_overlap(spans) for device, spans in devices.items()}
    assert max(overlaps.values()) == 2 and all(n <= 2 for n in overlaps.values()), overlaps
    # 6 runs in 4 slots: the failed run's slot went to a waiting run before any run ended.
    first_end = min(record["end"] for record in seen[1:])
    assert sum(record["start"] < first_end for record in seen[1:]) == 4
    assert {record["threads"] for record in seen} == {"2"}  # 8 cores over 4 runs at once
    log = Path(paths[1]).with_name("run.log").read_text()
    assert log.startswith("packed job ?: CUDA_VISIBLE_DEVICES=")


def test_a_stop_signal_reaches_every_run_and_the_job_requeues_once(packed_job, monkeypatch):
    paths = packed_job(["a", "b", "c"])
    requeues = []
    # submitit's USR2 handler as the job finds it; the job calls it once, after its runs.
    signal.signal(signal.SIGUSR2, lambda signum, frame: requeues.append(signum))
    monkeypatch.setenv("FAKE_SLEEP", "30")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")

    def signal_when_started() -> None:
        ready = [Path(p).with_name("ready") for p in paths[:2]]
        while not all(path.exists() for path in ready):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR2)  # as SLURM signals the job's task

    threading.Thread(target=signal_when_started, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(SystemExit) as ended:
        PackedSlurmJob(paths, 100, runs_per_device=2)()  # 1 GPU x 2: the third waits
    assert ended.value.code == 0 and time.monotonic() - start < 20  # not the 30 s sleep
    assert requeues == [signal.SIGUSR2]  # once, for the whole job
    assert [record["signal"] for record in _seen(paths[:2])] == [signal.SIGUSR2] * 2
    assert not Path(paths[2]).with_name("run.log").exists()  # not started once signalled
    assert not any(Path(p).with_name("result.json").exists() for p in paths)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the requeue's SIGTERM


# -- on the real one-node cluster --------------------------------------------------------
def _slurm_usable() -> bool:
    import shutil
    import subprocess

    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return probe.returncode == 0 and any(
        state.strip("*") in ("idle", "mixed", "allocated") for state in probe.stdout.split()
    )


def _results_without_times(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.pop("wall_time_s")
        row.pop("cost/median_step_s", None)
    return rows


@pytest.mark.slurm
@pytest.mark.skipif(not _slurm_usable(), reason="no running SLURM: bash .ci/slurm.sh start")
def test_one_packed_job_trains_two_runs_on_its_two_gpus_as_the_local_executor(tmp_path):
    from mtlscene.experiments import load_experiment, run_experiment
    from mtlscene.experiments.executors import make_executor

    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"name: tiny\nbase: [{TINY}]\nseeds: 2\nrows:\n"
        "  - {name: Uncertainty, weighting: uncertainty}\n"
    )
    experiment = load_experiment(path)
    # The test cluster's two GPUs are fake: SLURM grants them (CUDA_VISIBLE_DEVICES), the
    # runs train on the CPU.
    executor = make_executor("slurm", LOCALHOST, ["gpus_per_node=2"], runs_per_device=1)
    outcome = run_experiment(experiment, tmp_path / "slurm", executor=executor, echo=print)
    runs = sorted((tmp_path / "slurm" / "runs" / "uncertainty").glob("seed*"))
    logs = [(run / "run.log").read_text() for run in runs]
    assert len(outcome["done"]) == 2, logs
    jobs = {json.loads((run / JOB_FILE).read_text())["job_id"] for run in runs}
    assert len(jobs) == 1  # both runs in one job
    visible = sorted(log.splitlines()[0].rpartition("=")[2] for log in logs)
    assert visible == ["0", "1"]  # one GPU each
    for run in runs:
        attempts = (run / ATTEMPTS_FILE).read_text().splitlines()
        assert [json.loads(line)["outcome"] for line in attempts] == ["finished"]

    run_experiment(experiment, tmp_path / "local", jobs=2, echo=print)
    assert _results_without_times(tmp_path / "slurm") == _results_without_times(tmp_path / "local")
