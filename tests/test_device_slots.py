"""K runs per GPU: the device list, the slots, and the scheduling, with fake short processes.

No GPU is needed: the device ids are made up and each "run" is a ``python -c`` child that
records the ``CUDA_VISIBLE_DEVICES`` it saw and when it ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_runs import FAKE_RUN, by_device, max_overlap

from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.definition import Row
from mtlscene.experiments.executors import ExecutorConfigError, device_slots, local, make_executor
from mtlscene.experiments.executors.device_slots import (
    DeviceListError,
    DeviceSlots,
    parse_devices,
    run_packed,
)
from mtlscene.experiments.executors.local import LocalExecutor
from mtlscene.experiments.plan import PlannedRun, RunJob


def test_device_list_all_cpu_indices_and_mistakes():
    assert parse_devices("all", lambda: 4) == ["0", "1", "2", "3"]
    assert parse_devices(None, lambda: 2) == ["0", "1"]
    assert parse_devices("all", lambda: 0) == []  # a CPU-only machine
    assert parse_devices("cpu", lambda: 8) == []
    assert parse_devices("3, 1", lambda: 4) == ["3", "1"]
    with pytest.raises(DeviceListError, match="sees GPUs 0-3 .* so 4 cannot be used"):
        parse_devices("0,4", lambda: 4)
    with pytest.raises(DeviceListError, match="sees no GPU"):
        parse_devices("0", lambda: 0)
    with pytest.raises(DeviceListError, match="names a GPU twice"):
        parse_devices("1,1", lambda: 4)
    with pytest.raises(DeviceListError, match="indices separated by commas"):
        parse_devices("gpu0", lambda: 4)


def test_slots_spread_over_every_device_first_and_map_through_the_visible_list():
    slots = DeviceSlots(["0", "1", "2"], runs_per_device=2)
    taken = [slots.acquire() for _ in range(3)]
    assert taken == ["0", "1", "2"]  # one on each before a second on any
    assert [slots.acquire() for _ in range(4)] == ["0", "1", "2", None]
    slots.release("1")
    assert slots.acquire() == "1"
    # Inside an allocation of GPUs 4,5,6 this process numbers them 0,1,2.
    env = slots.environment("2", {"CUDA_VISIBLE_DEVICES": "4,5,6", "HOME": "/h"})
    assert env == {"CUDA_VISIBLE_DEVICES": "6", "HOME": "/h"}
    assert slots.environment("2", {})["CUDA_VISIBLE_DEVICES"] == "2"


def _fake_process(tmp_path: Path, sleep: float):
    def launch(item: str, env: dict[str, str]) -> subprocess.Popen:
        run_dir = tmp_path / item
        run_dir.mkdir()
        spec = {"run_dir": str(run_dir), "row": item, "seed": 0}
        (run_dir / "spec.json").write_text(json.dumps(spec))
        env = dict(env, FAKE_SLEEP=str(sleep), FAKE_FAIL_ROW="fails")
        return subprocess.Popen(
            [sys.executable, "-c", FAKE_RUN, str(run_dir / "spec.json")], env=env
        )

    return launch


def test_packed_processes_keep_k_per_device_and_a_failure_frees_its_slot(tmp_path):
    items = ["fails", *(f"run{i}" for i in range(7))]
    slots = DeviceSlots(["0", "1", "2"], runs_per_device=2)
    base = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "5,6,7"}
    ended = run_packed(items, slots, _fake_process(tmp_path, 0.6), base, poll_s=0.02)
    assert sorted(item for item, _ in ended) == sorted(items)
    assert dict(ended)["fails"] == 1 and all(code == 0 for item, code in ended if item != "fails")
    seen = [json.loads((tmp_path / item / "seen.json").read_text()) for item in items]
    devices = by_device(seen)
    assert set(devices) == {"5", "6", "7"}  # every device used, numbered as the job sees them
    overlaps = {device: max_overlap(spans) for device, spans in devices.items()}
    assert max(overlaps.values()) == 2 and all(n <= 2 for n in overlaps.values()), overlaps
    assert slots.busy == {"0": 0, "1": 0, "2": 0}


def _jobs(tmp_path: Path, rows: list[str], seeds: int = 1) -> list[RunJob]:
    return [
        RunJob("fake", PlannedRun(Row(row), seed, tmp_path / "runs" / row / f"seed{seed}"), [])
        for row in rows
        for seed in range(seeds)
    ]


@pytest.fixture
def fake_runs(monkeypatch):
    """Local runs become FAKE_RUN children (no training), sleeping 0.6 s."""
    monkeypatch.setattr(local, "_CHILD", FAKE_RUN)
    monkeypatch.setenv("FAKE_SLEEP", "0.6")
    monkeypatch.setenv("FAKE_FAIL_ROW", "fails")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_local_executor_places_k_runs_on_each_device(tmp_path, fake_runs):
    executor = LocalExecutor(jobs=None, slots=DeviceSlots(["3", "7"], runs_per_device=2))
    assert executor.jobs == 4
    jobs = _jobs(tmp_path, ["fails", "a", "b", "c"], seeds=2)
    done, failed = executor.run_all(jobs, lambda line: None)
    assert sorted((run.row.name, run.seed) for run in failed) == [("fails", 0), ("fails", 1)]
    assert len(done) == 6 and all(run.done for run in done)
    seen = [json.loads((job.run.run_dir / "seen.json").read_text()) for job in jobs]
    devices = by_device(seen)
    assert set(devices) == {"3", "7"}
    overlaps = {device: max_overlap(spans) for device, spans in devices.items()}
    assert max(overlaps.values()) == 2 and all(n <= 2 for n in overlaps.values()), overlaps
    assert executor.slots.busy == {"3": 0, "7": 0}


def test_a_failed_local_run_frees_its_slot_for_the_next(tmp_path, fake_runs, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "0.1")
    executor = LocalExecutor(jobs=None, slots=DeviceSlots(["0"], runs_per_device=1))
    jobs = _jobs(tmp_path, ["fails", "a", "b"])
    done, failed = executor.run_all(jobs, lambda line: None)
    assert [run.row.name for run in failed] == ["fails"]
    assert sorted(run.row.name for run in done) == ["a", "b"]
    assert "exit status 1: fake failure" in (jobs[0].run.run_dir / "failed.json").read_text()
    seen = [json.loads((job.run.run_dir / "seen.json").read_text()) for job in jobs]
    assert max_overlap([(s["start"], s["end"]) for s in seen]) == 1
    assert {s["visible"] for s in seen} == {"0"}


def test_device_options_build_the_executor_or_stop_with_the_fix(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(device_slots, "visible_gpu_count", lambda: 4)
    packed = make_executor("local", runs_per_device=2)  # devices default to all
    assert packed.jobs == 8 and packed.slots.devices == ["0", "1", "2", "3"]
    assert make_executor("local", devices="1,2", runs_per_device=3, jobs=5).jobs == 5
    with pytest.raises(ExecutorConfigError, match="9 runs at once do not fit in 8 device slots"):
        make_executor("local", runs_per_device=2, jobs=9)
    cpu = make_executor("local", devices="cpu", runs_per_device=3)
    assert cpu.jobs == 3 and cpu.slots is None  # the CPU keeps today's behaviour
    assert make_executor("local", jobs=2).slots is None
    with pytest.raises(ExecutorConfigError, match="place runs of the local executor"):
        make_executor("slurm", devices="all")
    monkeypatch.setattr(device_slots, "visible_gpu_count", lambda: 0)
    with pytest.raises(SystemExit, match="this machine sees no GPU"):
        experiment_main(["run", "table1", "--devices", "0,1", "--out", str(tmp_path)])
    assert not (tmp_path / "runs").exists()  # stopped before anything ran
