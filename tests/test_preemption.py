"""Preemption without a cluster: a stop signal mid-fit saves that very step, the job
requeues once, and the next attempt ends where the uninterrupted run ends; DataLoader
workers that receive the signal ignore it."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlscene.callbacks.preemption import STOP_REQUEST, STOP_SIGNALS
from mtlscene.experiments.executors.attempts import ATTEMPTS_FILE, job_args
from mtlscene.experiments.executors.slurm import SlurmRun
from mtlscene.experiments.single_run import execute

TINY = Path(__file__).parent / "conf" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    """A SLURM job installs process-wide handlers; the test process gets its own back."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    STOP_REQUEST.restore(before)
    STOP_REQUEST.clear()


def _args(run_dir: Path, *extra: str) -> list[str]:
    # 8 steps of 2 batches an epoch, validation after step 8 (and 4); deterministic.
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(run_dir)},
    }
    return [
        "--config", str(TINY), "--trainer.max_epochs=-1", "--trainer.max_steps=8",
        "--trainer.limit_train_batches=null", "--trainer.deterministic=true",
        "--trainer.check_val_every_n_epoch=2", f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger={json.dumps(logger)}", *extra,
    ]  # fmt: skip


def _spec(run_dir: Path, *extra: str) -> Path:
    run_dir.mkdir(parents=True)
    spec = {"experiment": "t", "row": "r", "seed": 0, "run_dir": str(run_dir)}
    spec["args"] = _args(run_dir, *extra)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    return run_dir / "spec.json"


def _signal_at(step: int, *names: str) -> str:
    probe = {"class_path": "signal_probe.SignalAt", "init_args": {"global_step": step}}
    probe["init_args"]["signals"] = list(names)
    return f"--trainer.callbacks+={json.dumps(probe)}"


def _signal_on(hook: str, *names: str) -> str:
    probe = {"class_path": "signal_probe.SignalOnHook", "init_args": {"hook": hook}}
    probe["init_args"]["signals"] = list(names)
    return f"--trainer.callbacks+={json.dumps(probe)}"


class FakeSubmititHandler:
    """Stands in for submitit's USR2 handler, which requeues and exits (rank 0)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, signum, frame) -> None:
        self.calls.append(signum)
        raise SystemExit(-1)


def test_usr2_mid_fit_saves_that_step_requeues_once_and_resumes_to_the_same_result(tmp_path):
    reference_dir = tmp_path / "uninterrupted"
    reference = execute(json.loads(_spec(reference_dir).read_text()))

    run_dir = tmp_path / "preempted"
    spec_path = _spec(run_dir, _signal_at(2, "SIGUSR2"))  # mid step 3
    submitit = FakeSubmititHandler()
    signal.signal(signal.SIGUSR2, submitit)
    # A periodic checkpoint every 100 steps never falls due: the signal alone saves.
    with pytest.raises(SystemExit):
        SlurmRun(str(spec_path), checkpoint_every_n_steps=100)()
    assert submitit.calls == [signal.SIGUSR2]  # requeued once, by the main process
    checkpoint = run_dir / "requeue" / "requeue.ckpt"
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 3
    assert not (run_dir / "result.json").exists()
    first = [json.loads(line) for line in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    assert [a["outcome"] for a in first] == ["SIGUSR2: checkpoint at step 3, stopped to requeue"]

    SlurmRun(str(spec_path), checkpoint_every_n_steps=100)()  # the requeued attempt
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["global_step"] == reference["global_step"] == 8
    for stage in ("val", "test", "sigma", "weight"):
        assert resumed[stage] == reference[stage], stage  # bit-identical
    attempts = [json.loads(line) for line in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    assert [a["outcome"] for a in attempts][1:] == ["finished"]
    total = sum(a["wall_time_s"] for a in attempts)
    # The run's wall time is both attempts', not the last one's: the slack is under half of
    # the first attempt, so counting the last attempt alone fails (a fixed 1 s slack needed
    # the first attempt to take over 1 s, which a fast idle machine does not).
    assert attempts[0]["wall_time_s"] > 0.1
    slack = attempts[0]["wall_time_s"] / 2
    assert total - slack < resumed["wall_time_s"] <= total + 0.01


def test_usr2_before_the_first_step_ends_with_a_worker_resumes_to_the_same_result(tmp_path):
    # As in the SLURM test: the signal arrives as the fit starts (before the sanity check,
    # and before RequeueCheckpoint takes the handlers back at train start), the loaders have
    # a persistent worker, and the resumed fit validates (after step 4) before it ends.
    # The resumed fit's first validation used to draw its worker seed from the global RNG,
    # which the fresh fit drew inside the sanity check's isolated RNG: dropout then differed.
    workers = "--data.num_workers=1"
    reference = execute(json.loads(_spec(tmp_path / "uninterrupted", workers).read_text()))

    run_dir = tmp_path / "preempted"
    spec_path = _spec(run_dir, workers, _signal_on("on_fit_start", "SIGUSR2"))
    submitit = FakeSubmititHandler()
    signal.signal(signal.SIGUSR2, submitit)
    with pytest.raises(SystemExit):
        SlurmRun(str(spec_path), checkpoint_every_n_steps=100)()
    assert submitit.calls == [signal.SIGUSR2]
    # Kept through the handlers' re-install and honoured at the first step boundary.
    checkpoint = torch.load(run_dir / "requeue" / "requeue.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 1

    SlurmRun(str(spec_path), checkpoint_every_n_steps=100)()  # the requeued attempt
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["global_step"] == reference["global_step"] == 8
    for stage in ("val", "test", "sigma", "weight"):
        assert resumed[stage] == reference[stage], stage  # bit-identical


def test_sigterm_in_validation_saves_the_next_step_instead_of_lightnings_stop(tmp_path):
    # Lightning's own SIGTERM handling would end the fit after this validation, unsaved.
    run_dir = tmp_path / "terminated"
    probe = {"class_path": "signal_probe.SignalInValidation", "init_args": {"signals": ["SIGTERM"]}}
    spec_path = _spec(run_dir, f"--trainer.callbacks+={json.dumps(probe)}")  # after step 4
    submitit = FakeSubmititHandler()
    signal.signal(signal.SIGUSR2, submitit)
    with pytest.raises(SystemExit):
        SlurmRun(str(spec_path), checkpoint_every_n_steps=100)()
    assert submitit.calls == [signal.SIGTERM]
    checkpoint = torch.load(run_dir / "requeue" / "requeue.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 5


def test_a_forked_process_ignores_the_stop_signals():
    STOP_REQUEST.install()

    def worker() -> None:  # what a DataLoader worker does when SLURM signals it
        for signum in STOP_SIGNALS:
            os.kill(os.getpid(), signum)
        time.sleep(0.05)
        sys.exit(0 if STOP_REQUEST.signum is None else 3)

    process = multiprocessing.get_context("fork").Process(target=worker)
    process.start()
    process.join(10)
    assert process.exitcode == 0  # neither killed by the signal nor acting on it
    assert not STOP_REQUEST.requested  # and the main process was not asked to stop


def test_workers_signalled_keep_serving_and_a_signal_in_the_last_step_lets_the_run_finish(
    tmp_path,
):
    from signal_probe import SignalWorkersAt

    from mtlscene.cli.main import build_cli

    run_dir = tmp_path / "workers"
    # 7 steps: the last one is an epoch's first batch, so only "the run ends" defers it.
    args = _args(run_dir, "--data.num_workers=1", "--trainer.max_steps=7", _signal_at(6, "SIGUSR2"))
    cli = build_cli(job_args(args, run_dir, 100), run=False)
    probe = SignalWorkersAt(2, ["SIGUSR2", "SIGTERM"])
    cli.trainer.callbacks.append(probe)
    # Neither a dead worker ("DataLoader worker exited unexpectedly") nor RequeueRequested.
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert probe.workers_signalled >= 1
    assert cli.trainer.global_step == 7
    assert not (run_dir / "requeue" / "requeue.ckpt").exists()
