"""The slurm executor against fake SLURM commands (no cluster): what it submits
(``--requeue``, multi-node), how it survives a controller blip, and what a refused or
unreachable submission leaves behind."""

from __future__ import annotations

import json
import pickle
import stat
from pathlib import Path

import pytest

from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.executors import slurm, slurm_commands
from mtlscene.experiments.executors.attempts import ATTEMPTS_FILE, job_args
from mtlscene.experiments.executors.slurm import SlurmExecutor, load_slurm_config

TINY = Path(__file__).parent / "conf" / "tiny.yaml"

SBATCH = """#!/bin/bash
echo "$*" >> "$FAKE_SLURM/sbatch_calls"
if [[ " $* " == *" --test-only "* ]]; then
    case "$FAKE_SLURM_MODE" in
    down) echo "allocation failure: Unable to contact slurm controller (connect failure)" >&2
        exit 1 ;;
    esac
    echo "sbatch: Job 4242 to start at 2025-01-01T00:00:00 using 1 processors" >&2
    exit 0
fi
if [ "$FAKE_SLURM_MODE" = refuse ]; then
    echo "sbatch: error: Batch job submission failed: Invalid account or account/partition \
combination specified" >&2
    exit 1
fi
cp "$1" "$FAKE_SLURM/submitted.sh"
echo "Submitted batch job 4242"
"""
SQUEUE = """#!/bin/bash
calls=$(( $(cat "$FAKE_SLURM/squeue_calls" 2>/dev/null || echo 0) + 1 ))
echo "$calls" > "$FAKE_SLURM/squeue_calls"
if [ "$calls" -le "${FAKE_SQUEUE_FAILURES:-0}" ]; then
    echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2
    exit 1
fi
printf "%b" "${FAKE_SQUEUE_OUTPUT:-}"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch, squeue, scancel and sacct that answer from environment variables."""
    folder = tmp_path / "fake_slurm"
    folder.mkdir()
    scripts = {"sbatch": SBATCH, "squeue": SQUEUE, "scancel": "#!/bin/bash\n"}
    scripts["sacct"] = "#!/bin/bash\necho 'Slurm accounting storage is disabled' >&2; exit 1\n"
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    monkeypatch.setattr(slurm_commands, "RETRY_DELAYS_S", (0.01, 0.01, 0.01, 0.01))
    monkeypatch.setattr(slurm, "PREFLIGHT_RETRY_DELAYS_S", (0.01,))
    return folder


def _experiment(tmp_path: Path, overrides: str = "") -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: tiny\nbase: [{TINY}]\nseeds: 1\nrows:\n"
        f"  - {{name: Uncertainty, weighting: uncertainty, overrides: [{overrides}]}}\n"
    )
    return path


def _run(tmp_path: Path, out: Path, *slurm: str, overrides: str = "") -> list[str]:
    argv = ["run", str(_experiment(tmp_path, overrides)), "--out", str(out)]
    argv += ["--executor", "slurm", "--no-wait"]
    for item in slurm:
        argv += ["--slurm", item]
    return argv


def test_squeue_failing_twice_is_retried_and_a_dead_controller_named(fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SQUEUE_FAILURES", "2")
    monkeypatch.setenv("FAKE_SQUEUE_OUTPUT", "4242_0|RUNNING|0:05\\n")
    executor = SlurmExecutor(load_slurm_config(None))
    assert executor.queue(fresh=True) == {"4242_0": ("RUNNING", "0:05")}
    assert (fake_slurm / "squeue_calls").read_text().strip() == "3"

    (fake_slurm / "squeue_calls").unlink()
    monkeypatch.setenv("FAKE_SQUEUE_FAILURES", "99")
    with pytest.raises(slurm_commands.SlurmUnavailable, match="controller is unreachable"):
        executor.queue(fresh=True)
    assert (fake_slurm / "squeue_calls").read_text().strip() == "5"  # 1 + 4 retries


def test_unreachable_controller_is_named_and_nothing_is_left(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MODE", "down")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        experiment_main(_run(tmp_path, out))
    message = str(stop.value)
    assert "SLURM controller is unreachable" in message and "slurmctld" in message
    assert "partition, account" not in message  # not blamed on the request
    assert "\n" not in message and "Nothing was submitted" in message
    assert (fake_slurm / "sbatch_calls").read_text().count("--test-only") == 2  # one retry
    assert not list(out.rglob("spec.json"))


def test_refused_submission_leaves_no_run_listed_as_not_started(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MODE", "refuse")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="sbatch refused the jobs: .*Invalid account"):
        experiment_main(_run(tmp_path, out))
    assert not list(out.rglob("spec.json")) and not list(out.rglob("job.json"))
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


def test_submission_requeues_and_spans_nodes(tmp_path, fake_slurm, capsys):
    out = tmp_path / "out"
    ddp = '"--trainer.devices=2", "--trainer.strategy=ddp"'
    argv = _run(tmp_path, out, "nodes=2", "gpus_per_node=devices", overrides=ddp)
    assert experiment_main(argv) == 0
    script = (fake_slurm / "submitted.sh").read_text().splitlines()
    for line in ("--nodes=2", "--ntasks-per-node=2", "--gpus-per-node=2", "--requeue"):
        assert f"#SBATCH {line}" in script, line
    assert any(line.startswith("srun ") for line in script)  # srun starts one task per GPU
    preflight = (fake_slurm / "sbatch_calls").read_text().splitlines()[0]
    assert "--test-only" in preflight and "--nodes=2" in preflight and "--requeue" in preflight
    # The job's callable: the run with trainer.num_nodes = 2 inside the job.
    pickled = next(out.glob("slurm/**/*_submitted.pkl"))
    with pickled.open("rb") as handle:
        call = pickle.load(handle).function
    spec = json.loads(Path(call.spec_path).read_text())
    assert call.nodes == 2
    assert "--trainer.num_nodes=2" in job_args(spec["args"], Path(spec["run_dir"]), 500, call.nodes)


def test_rerun_resumes_a_cancelled_jobs_checkpoint_unless_the_run_changed(
    tmp_path, fake_slurm, capsys
):
    out = tmp_path / "out"
    assert experiment_main(_run(tmp_path, out)) == 0
    run_dir = out / "runs" / "uncertainty" / "seed0"
    checkpoint = run_dir / "requeue" / "requeue.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"periodic checkpoint of the cancelled job")
    (run_dir / ATTEMPTS_FILE).write_text('{"wall_time_s": 60.0, "outcome": "cancelled"}\n')
    capsys.readouterr()
    assert experiment_main(_run(tmp_path, out)) == 0  # the job left the queue without a result
    assert "1 run(s) submitted" in capsys.readouterr().out
    assert checkpoint.is_file() and (run_dir / ATTEMPTS_FILE).is_file()  # resumed from there

    # Other arguments: that checkpoint (and its wall time) belong to another configuration.
    changed = _run(tmp_path, out, overrides='"--model.weighting.init_args.lr=0.01"')
    assert experiment_main(changed) == 0
    assert not checkpoint.exists() and not (run_dir / ATTEMPTS_FILE).exists()
