"""A newcomer's command lines (issue 20): nothing silently accepted, help that shows how."""

from __future__ import annotations

import pytest

from mtlscene.experiments.cli import main as experiment_main


@pytest.mark.parametrize("seeds", ["0", "-1"])
def test_experiment_with_no_seeds_is_refused_not_an_empty_success(seeds, capsys):
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["run", "table1", "--seeds", seeds])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--seeds: takes a whole number >= 1, got '{seeds}'" in err
    assert len(err.strip().splitlines()) == 2  # the error and where the help is, no usage


def test_experiment_help_shows_example_commands(capsys):
    with pytest.raises(SystemExit):
        experiment_main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "mtlscene-experiment run table1 --seeds 3" in out


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_subcommand_help_starts_with_the_options_a_newcomer_needs(subcommand, capsys):
    from mtlscene.cli.main import main

    with pytest.raises(SystemExit):
        main([subcommand, "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == f"usage: mtlscene {subcommand} [--config FILE ...] [--ckpt_path FILE] [options]"
    )
    first_screen = "\n".join(lines[:20])
    for option in ("--config FILE", "--data.root", "--trainer.max_epochs", "--ckpt_path FILE"):
        assert option in first_screen
    assert "--trainer.limit_predict_batches" in "\n".join(lines[20:])  # the rest still follows


def test_no_subcommand_asks_for_one(capsys):
    from mtlscene.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "one of {fit,validate,test,predict}" in err and "--data" not in err
