"""A newcomer's bad inputs (issue 20): each ends in one message naming the file or option and
the fix, without a traceback; a checkpoint never silently replaces the model a config names."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch

from mtlscene.cli.main import build_cli, main
from mtlscene.errors import CheckpointError, ConfigError

TESTS = Path(__file__).parent
TINY = str(TESTS / "conf" / "tiny.yaml")
SEMANTIC_DEPTH = str(TESTS.parent / "configs" / "tasks" / "semantic_depth.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One tiny three-task run: its checkpoint, config and data root."""
    base = tmp_path_factory.mktemp("trained")
    root = base / "data"
    fit = build_cli(
        ["fit", "--config", TINY, "--data.root", str(root)]
        + ["--trainer.logger.init_args.save_dir", str(base / "runs")]
        + ["--trainer.default_root_dir", str(base / "runs")]
    )
    run = Path(fit.trainer.logger.log_dir)
    return {"ckpt": run / "checkpoints" / "last.ckpt", "config": run / "config.yaml", "root": root}


def _data(trained) -> list[str]:
    return ["--data.root", str(trained["root"])]


# 1. A checkpoint against the config: the checkpoint's network runs; a different one stops.


def test_config_with_fewer_tasks_than_the_checkpoint_stops_naming_both(trained):
    args = ["validate", "--config", TINY, "--config", SEMANTIC_DEPTH, *_data(trained)]
    with pytest.raises(CheckpointError) as error:
        build_cli([*args, "--ckpt_path", str(trained["ckpt"])])
    message = str(error.value)
    assert str(trained["ckpt"]) in message
    assert "checkpoint ['semantic', 'instance', 'depth'], yours ['semantic', 'depth']" in message
    assert "config.yaml in its run's log folder" in message  # the fix


def test_explicit_active_tasks_option_is_not_ignored(trained):
    args = ["validate", "--config", TINY, "--model.active_tasks", "[semantic]", *_data(trained)]
    with pytest.raises(CheckpointError, match=r"yours \['semantic'\]"):
        build_cli([*args, "--ckpt_path", str(trained["ckpt"])])


def test_config_with_more_tasks_than_the_checkpoint_stops_naming_both(trained, tmp_path):
    checkpoint = torch.load(trained["ckpt"], weights_only=True, map_location="cpu")
    checkpoint["hyper_parameters"]["active_tasks"] = ["semantic", "depth"]
    two_tasks = tmp_path / "checkpoints" / "two_tasks.ckpt"
    two_tasks.parent.mkdir()
    torch.save(checkpoint, two_tasks)
    with pytest.raises(CheckpointError) as error:
        build_cli(["validate", "--config", TINY, *_data(trained), "--ckpt_path", str(two_tasks)])
    assert "checkpoint ['semantic', 'depth'], yours ['semantic', 'instance', 'depth']" in str(
        error.value
    )


def test_different_head_and_weighting_settings_are_named(trained):
    args = ["validate", "--config", TINY, *_data(trained), "--ckpt_path", str(trained["ckpt"])]
    with pytest.raises(CheckpointError) as error:
        build_cli(args + ["--model.weighting.init_args.lr", "0.5"])
    assert "model.weighting.init_args.lr: checkpoint 0.05, yours 0.5" in str(error.value)


def test_checkpoint_model_fills_in_and_evaluation_settings_follow_the_user(trained, capsys):
    """Without model settings the checkpoint's model runs; the run's own config matches it;
    evaluation settings (instance_ap) follow the user. Validating twice keeps both logs."""
    size = ["--data.size", "[32, 64]", "--data.synthetic", "true", "--data.num_workers", "0"]
    trainer = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    first = build_cli(
        ["validate", *_data(trained), *size, *trainer, "--ckpt_path", str(trained["ckpt"])]
    )
    assert sorted(first.model.heads) == ["depth", "instance", "semantic"]
    assert first.model.network.encoder.out_channels == 16  # the tiny checkpoint's ASPP
    assert "val/instance/ap" in first.trainer.callback_metrics

    args = ["validate", "--config", str(trained["config"]), *_data(trained)]
    second = build_cli([*args, "--model.instance_ap", "false", "--ckpt_path", str(trained["ckpt"])])
    assert second.model.instance_ap is False
    assert "val/instance/ap" not in second.trainer.callback_metrics
    third = build_cli([*args, "--ckpt_path", str(trained["ckpt"])])
    run = trained["ckpt"].parent.parent
    # 5. Results not overwritten: each evaluation of the same checkpoint keeps its logs.
    assert Path(second.trainer.logger.log_dir) == run / "validate_last"
    assert Path(third.trainer.logger.log_dir) == run / "validate_last_2"
    assert (run / "validate_last" / "metrics.csv").is_file()
    assert (run / "validate_last_2" / "metrics.csv").is_file()


# 4. Checkpoints that are not checkpoints.


def test_random_bytes_checkpoint_is_named_as_not_a_checkpoint(tmp_path):
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=f"--ckpt_path {bad} is not a checkpoint"):
        build_cli(["validate", "--config", TINY, "--ckpt_path", str(bad)])


def test_missing_checkpoint_is_named():
    with pytest.raises(CheckpointError, match="--ckpt_path nowhere.ckpt: no such file"):
        build_cli(["validate", "--config", TINY, "--ckpt_path", "nowhere.ckpt"])


def test_user_error_is_one_message_without_traceback_unless_debugging(
    tmp_path, capsys, monkeypatch
):
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--config", TINY, "--ckpt_path", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"mtlscene: error: --ckpt_path {bad} is not a checkpoint")
    assert len(err.strip().splitlines()) == 2  # the message and how to see the traceback
    monkeypatch.setenv("MTLSCENE_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(["validate", "--config", TINY, "--ckpt_path", str(bad)])


# 4. Config files: the file named, every typo at once, "did you mean".


def test_every_typo_of_a_config_file_is_named_with_a_suggestion(tmp_path):
    config = tmp_path / "typos.yaml"
    config.write_text(
        "trainer:\n  max_epoch: 1\n  limit_train_batchs: 2\n"
        "model:\n  weighting:\n    class_path: mtlscene.weighting.UncertaintyWeighting\n"
        "    init_args: {lr: 0.1, init_log_varianse: 0.0}\n"
        "data:\n  init_args: {batch_sise: 2}\n"
    )
    with pytest.raises(ConfigError) as error:
        build_cli(["fit", "--config", TINY, "--config", str(config)])
    message = str(error.value)
    assert message.startswith(f"{config}: 4 unknown keys")
    assert "trainer.max_epoch (did you mean trainer.max_epochs?)" in message
    assert "trainer.limit_train_batchs (did you mean trainer.limit_train_batches?)" in message
    assert "'init_log_varianse' (did you mean init_log_variance?)" in message
    assert "'batch_sise' (did you mean batch_size?)" in message


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_epochs: 1\n  callbacks: [1\n")
    with pytest.raises(ConfigError, match=f"{config} line 4, column 1: YAML syntax error"):
        build_cli(["fit", "--config", TINY, "--config", str(config)])


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError, match="--config nowhere.yaml: no such file"):
        build_cli(["fit", "--config", "nowhere.yaml"])


# 3./4. Options: no prefix matching, a suggestion, a short message.


def test_option_prefix_is_not_taken_for_another_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", TINY, "--trainer.max_epoch", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option --trainer.max_epoch (did you mean --trainer.max_epochs?)" in err
    assert len(err.strip().splitlines()) == 2  # no usage block of every option


def test_one_number_image_size_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match=r"data.size must be \[height, width\].*got \[64\]"):
        build_cli(["fit", "--config", TINY, "--data.size", "[64]"])


def test_negative_fixed_weight_names_the_file_and_the_full_key(tmp_path):
    config = tmp_path / "negative.yaml"
    config.write_text(
        "model:\n  weighting:\n    class_path: mtlscene.weighting.FixedWeighting\n"
        "    init_args:\n      weights: {semantic: -1.0, instance: 0.5, depth: 0.5}\n"
    )
    with pytest.raises(ConfigError) as error:
        build_cli(["fit", "--config", TINY, "--config", str(config)])
    assert str(error.value) == (
        f"{config}: model.weighting.init_args.weights.semantic must be >= 0, got -1.0: a "
        "weight scales its task's loss, and 0 turns the task off"
    )


# 6. No noise: the litlogger tip, "0 Total Flops" and the _pytree deprecation.


def test_trainer_and_summary_print_no_tip_and_no_zero_flops(trained):
    from lightning.pytorch import Trainer

    from mtlscene.callbacks.model_summary import ModelSummary

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    # The loggers that emit (the summary's, rank_zero_info's) must be on whatever earlier
    # tests or libraries did to logging (a dictConfig disables existing loggers, a level may
    # have been raised); their state is restored afterwards.
    emitters = [loggers[0], loggers[1]] + [
        logging.getLogger(n)
        for n in (
            "lightning.pytorch.callbacks.model_summary",
            "lightning.pytorch.utilities.rank_zero",
            "lightning.fabric.utilities.rank_zero",
        )
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in emitters]
    for logger in loggers:
        logger.addHandler(handler)
    for logger in emitters:
        logger.setLevel(logging.INFO)
        logger.disabled = False
    try:
        Trainer(accelerator="cpu", logger=True, default_root_dir="runs")
        ModelSummary.summarize(
            [("Name", ["a"]), ("FLOPs", ["0"])], 10, 10, 0.1, {"train": 1, "eval": 0}, 0
        )
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
    text = "\n".join(records)
    assert "Trainable params" in text  # the summary was logged
    assert "litlogger" not in text
    assert "Flops" not in text and "FLOPs" not in text


def test_combined_loader_raises_no_pytree_deprecation():
    from lightning.pytorch.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        import mtlscene.cli.main  # noqa: F401  (installs the filters)
        from mtlscene.cli.quiet import silence_known_noise

        silence_known_noise()
        _tree_flatten({"a": torch.zeros(1), "b": [torch.zeros(1)]})
    assert not [w for w in caught if "LeafSpec" in str(w.message)]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--trainer.max_epochs", "abc", "--trainer.max_epochs: expected int (got 'abc')"),
        ("--model.weighting", "NoSuchWeighting", "--model.weighting: no such class"),
    ],
)
def test_rejected_option_value_names_the_option_and_value(option, value, message, capsys):
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", TINY, option, value])
    err = capsys.readouterr().err
    assert message in err
    assert "Union subtypes" not in err and len(err.strip().splitlines()) == 2


def test_zero_batch_size_is_refused_before_training():
    with pytest.raises(ConfigError, match="data.batch_size must be a whole number >= 1, got 0"):
        build_cli(["fit", "--config", TINY, "--data.batch_size", "0"])


# 3. A whole number of batches is a number of batches, not 100 %.


@pytest.mark.parametrize(("given", "batches"), [("1", [1]), ("1.0", [2])])
def test_limit_of_one_batch_is_one_batch_not_the_whole_split(given, batches):
    cli = build_cli(
        ["validate", "--config", TINY, "--data.batch_size", "1"]
        + ["--trainer.limit_val_batches", given, "--model.instance_ap", "false"]
    )
    assert cli.trainer.num_val_batches == batches  # the val split has 2 images
