"""The last frictions a newcomer hit (issue 28): each mistake ends in one line naming the option
or file and the fix, without a traceback; a correct run prints no noise."""

from __future__ import annotations

import logging
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mtlscene.cli.errors import locate
from mtlscene.cli.main import build_cli, main
from mtlscene.data import DatasetFileError
from mtlscene.errors import report
from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.plan import log_cause

TESTS = Path(__file__).parent
CONFIGS = TESTS.parent / "configs"
TINY = str(TESTS / "conf" / "tiny.yaml")


def _one_line_error(capsys, args: list[str]) -> str:
    """The stderr of ``mtlscene ARGS``, checked to be one error line and the debug hint."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err  # the message, and how to see the traceback or the help
    return lines[0]


# A traceback instead of one line.


@pytest.mark.parametrize("command", ["run", "search"])
def test_misspelled_experiment_suggests_the_shipped_name(command):
    with pytest.raises(SystemExit) as exit_info:
        experiment_main([command, "tabel1"])
    message = str(exit_info.value.code)
    assert "no experiment 'tabel1' (did you mean table1?)" in message
    assert "\n" not in message


def test_a_missing_executor_config_is_one_line_naming_the_shipped_ones(tmp_path):
    args = ["run", "table1", "--executor", "slurm", "--executor-config", "missing.yaml"]
    with pytest.raises(SystemExit) as exit_info:
        experiment_main([*args, "--out", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("--executor-config missing.yaml: no such file")
    assert "example_cluster.yaml, localhost.yaml" in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing written


def _without_gpus(monkeypatch) -> None:
    """This machine as one without a GPU, whatever it has."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    for accelerator in (CUDAAccelerator, MPSAccelerator):
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: False))


def test_gpu_accelerator_without_a_gpu_is_one_line(capsys, monkeypatch, tmp_path):
    _without_gpus(monkeypatch)
    data = ["--data.root", str(tmp_path / "data")]
    line = _one_line_error(capsys, ["fit", "--config", TINY, *data, "--trainer.accelerator", "gpu"])
    assert line.startswith("mtlscene: error: --trainer.accelerator gpu, but this machine has no")
    assert "use --trainer.accelerator cpu" in line
    # Set by a config file: the file is named.
    preset = tmp_path / "gpu.yaml"
    preset.write_text("trainer:\n  accelerator: gpu\n")
    line = _one_line_error(capsys, ["fit", "--config", TINY, "--config", str(preset), *data])
    assert f"{preset} sets trainer.accelerator: gpu, but this machine has no GPU" in line


def test_misspelled_task_lists_the_tasks_and_suggests_one(capsys, tmp_path):
    args = ["fit", "--config", TINY, "--data.root", str(tmp_path / "data")]
    line = _one_line_error(capsys, [*args, "--model.tasks", "{semantic: {}, instanse: {}}"])
    assert "unknown task 'instanse' in model.tasks (did you mean instance?)" in line
    assert "registered tasks: depth, instance, metric_depth, normal, semantic" in line


def _write_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (16, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_predict_names_a_corrupt_image_before_predicting(capsys, tmp_path):
    folder = tmp_path / "photos" / "leftImg8bit" / "val" / "street"
    _write_png(folder / "a_000000_000001_leftImg8bit.png")
    bad = _write_png(folder / "b_000000_000002_leftImg8bit.png")
    bad.write_bytes(bad.read_bytes()[:200])  # truncated, as by an interrupted copy
    args = ["predict", "--config", TINY, "--data.root", str(tmp_path / "photos")]
    args += ["--data.synthetic", "false", "--data.predict_split", "val"]
    line = _one_line_error(capsys, args)
    assert f"1 image(s) cannot be read, so nothing was predicted: {bad} (not a complete PNG" in line
    assert "a_000000_000001" not in line


class _BadFile(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise DatasetFileError(f"corrupt or truncated image frame{index}.png; re-download it")


def test_error_inside_a_dataloader_worker_is_reported_without_its_traceback(capsys):
    """What the pre-check cannot see (damage inside a PNG's data) fails in a worker: its
    traceback, carried in the message, is cut to the worker's own sentence."""
    loader = torch.utils.data.DataLoader(_BadFile(), num_workers=1)
    with pytest.raises(DatasetFileError) as error:
        next(iter(loader))
    assert "Original Traceback" in str(error.value)
    assert report(error.value, "mtlscene") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "mtlscene: error: corrupt or truncated image frame0.png; re-download it"
    )
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2


# Weak messages.


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("mtlscene.weighting.DWA", "DWAWeighting"),
        ("dwa", "DWAWeighting"),  # a preset's short name
        ("pcgard", "PCGradWeighting"),
        ("NoSuchWeighting", None),  # alike only by the suffix every class shares
    ],
)
def test_weighting_class_typo_lists_the_classes_and_suggests_one(given, meant, capsys):
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", TINY, "--model.weighting", given])
    err = capsys.readouterr().err
    assert f"--model.weighting: no such class {given!r}" in err
    if meant:
        assert f"(did you mean mtlscene.weighting.{meant}?)" in err
    else:
        assert "did you mean" not in err
    assert "UncertaintyWeighting" in err and "PCGradWeighting" in err  # the valid names
    assert "Problem with given class_path" not in err
    assert len(err.strip().splitlines()) == 2


def test_failed_run_is_summarised_by_its_cause_not_its_last_line(capsys):
    # A run's log as `mtlscene fit` writes it for a bad option: the error, then the help hint.
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", TINY, "--model.weighting", "mtlscene.weighting.DWA"])
    log = "Seed set to 0\n" + capsys.readouterr().err
    assert log.rstrip().endswith("lists every option.")
    assert log_cause(log).startswith("mtlscene fit: error: --model.weighting: no such class")
    # A run that raised: the last exception of the traceback, not a trailing line after it.
    try:
        try:
            raise OSError("image file is truncated")
        except OSError as error:
            raise DatasetFileError("corrupt image x.png; re-download it") from error
    except DatasetFileError:
        log = traceback.format_exc() + "\nwandb: Synced 0 files\n"
    cause = "mtlscene.data.io.DatasetFileError: corrupt image x.png; re-download it"
    assert log_cause(log) == cause
    assert log_cause("\n\n") == "no output"


def test_failed_slurm_job_is_summarised_by_its_cause(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mtlscene.experiments.executors import slurm

    log = tmp_path / "42_0_log.err"
    log.write_text(
        "mtlscene fit: error: --model.weighting: no such class 'DWA'\n"
        "`mtlscene fit --help` lists every option.\n"
    )
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: {"42": "FAILED"})
    handle = object.__new__(slurm.SlurmJobHandle)
    handle.run = SimpleNamespace(done=False)
    handle.record = {"job_id": "42", "stderr": str(log)}
    assert handle.error() == (
        "job 42 ended (FAILED) without a result: mtlscene fit: error: --model.weighting: no "
        "such class 'DWA'"
    )


def test_constructor_refusal_names_the_nested_key_and_its_file(tmp_path):
    config = tmp_path / "composed.yaml"
    config.write_text(
        "model:\n  weighting:\n    class_path: mtlscene.weighting.ComposedWeighting\n"
        "    init_args:\n      loss_weighting:\n"
        "        class_path: mtlscene.weighting.FixedWeighting\n"
        "        init_args: {weights: {semantic: -2.0, depth: 1.0}}\n"
    )
    resolved = yaml.safe_load(config.read_text())
    message = locate("FixedWeighting.weights.semantic must be >= 0", resolved, ["-c", str(config)])
    assert message == (
        f"{config}: model.weighting.init_args.loss_weighting.init_args.weights.semantic "
        "must be >= 0"
    )
    # Set on the command line last: the option is the key, no file is blamed.
    args = ["-c", str(config), "--model.weighting.loss_weighting.weights", "{semantic: -2}"]
    assert locate("FixedWeighting.weights.semantic must be >= 0", resolved, args).startswith(
        "model.weighting.init_args.loss_weighting"
    )


# Noise on correct runs.


@pytest.mark.parametrize("config", ["nyuv2_quickstart.yaml", "own_data_example.yaml"])
def test_shipped_configs_without_an_instance_head_say_nothing_of_clustering(config, caplog):
    import lightning_utilities.core.rank_zero as rank_zero

    from mtlscene.models import DeepLabEncoder
    from mtlscene.trainers.multitask import MultiTaskModule

    model = yaml.safe_load((CONFIGS / config).read_text())["model"]
    logger = rank_zero.log
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            module = MultiTaskModule(
                backbone=DeepLabEncoder(name="resnet18", aspp_channels=8),
                tasks=model["tasks"],
                instance_ap=model.get("instance_ap", True),
            )
    finally:
        logger.removeHandler(caplog.handler)
    assert module.clustering is None  # off, as designed: no instance head
    assert "clustering" not in caplog.text and "is off" not in caplog.text


def test_srun_hint_is_silenced(monkeypatch):
    from lightning.fabric.plugins.environments import slurm
    from lightning.pytorch import Trainer

    from mtlscene.cli.quiet import silence_known_noise

    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    caught = []
    for silenced in (False, True):
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always")
            if silenced:
                silence_known_noise()
            Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
        caught.append([w for w in found if "`srun` command is available" in str(w.message)])
    assert caught[0], "Lightning no longer warns: drop the filter"
    assert not caught[1]


@pytest.fixture
def seed_records():
    """The messages of Lightning's seed logger while the test runs."""
    logger = logging.getLogger("lightning.fabric.utilities.seed")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    level, disabled = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.disabled = disabled


def test_seed_is_said_only_after_the_config_is_known_good(seed_records, capsys, tmp_path):
    negative = tmp_path / "negative.yaml"
    negative.write_text(
        "model:\n  weighting:\n    class_path: mtlscene.weighting.FixedWeighting\n"
        "    init_args:\n      weights: {semantic: -1.0, instance: 0.5, depth: 0.5}\n"
    )
    line = _one_line_error(capsys, ["fit", "--config", TINY, "--config", str(negative)])
    assert line.startswith(f"mtlscene: error: {negative}: model.weighting.init_args.weights")
    assert not seed_records and "Seed set" not in capsys.readouterr().err
    # A good config: said once, and seeded before the model was built (same initial weights).
    first = build_cli(["--config", TINY], run=False)
    second = build_cli(["--config", TINY], run=False)
    assert seed_records == ["Seed set to 0", "Seed set to 0"]
    weights = [next(cli.model.network.parameters()) for cli in (first, second)]
    assert torch.equal(*weights)


def test_test_prints_one_metric_table(capsys, tmp_path):
    main(["test", "--config", TINY, "--data.root", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert out.count("Test results (the paper's columns first)") == 1
    assert "Test metric" not in out and "DataLoader 0" not in out  # Lightning's table
    table = out.split("Test results (the paper's columns first)")[1]
    assert "IoU [%]" in table and "test/depth/rel" in table  # paper columns, then the rest
    assert "test/depth/mae" not in table  # shown once, as a paper column
