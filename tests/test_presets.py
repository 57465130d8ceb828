"""Shipped presets compose in any order, and what depends on the active tasks follows them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from mtlscene.callbacks import TaskCheckpoint
from mtlscene.cli.main import build_cli, parse_config

ROOT = Path(__file__).parents[1] / "configs"
TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
MAIN_CONFIGS = [ROOT / "quickstart.yaml", ROOT / "cityscapes_tiny.yaml"]
# Experiment definitions and executor settings are runner input, not CLI configs.
PRESETS = sorted(
    p for p in ROOT.glob("*/*.yaml") if p.parent.name not in ("experiments", "executors")
)
KINDS = sorted({preset.parent.name for preset in PRESETS})
WEIGHTING = sorted((ROOT / "weighting").glob("*.yaml"))
TASK_SETS = [None, *sorted((ROOT / "tasks").glob("*.yaml"))]
# The callbacks every main config carries; no preset may drop one.
EXPECTED_CALLBACKS = {
    "mtlscene.callbacks.TaskCheckpoint",
    "mtlscene.callbacks.MetricsTable",
    "mtlscene.callbacks.UncertaintyTracker",
    "mtlscene.callbacks.WandbValidationImages",
    "mtlscene.callbacks.PredictionWriter",
}


def _key_paths(tree, prefix=()):
    """Leaf key paths of a YAML mapping; a class_path/init_args pair counts as its parent."""
    if not isinstance(tree, dict) or "class_path" in tree:
        return {prefix}
    return set().union(*(_key_paths(value, (*prefix, key)) for key, value in tree.items()))


def _resolved(*configs: Path):
    args = []
    for config in configs:
        args += ["--config", str(config)]
    return parse_config(args)


def test_presets_of_different_kinds_set_disjoint_keys_and_no_callbacks():
    """Disjoint keys make the order of --config files irrelevant across kinds."""
    assert {"weighting", "tasks", "logger", "trainer"} <= set(KINDS)
    owners: dict[tuple, set[str]] = {}
    for preset in PRESETS:
        paths = _key_paths(yaml.safe_load(preset.read_text()))
        assert ("trainer", "callbacks") not in paths, f"{preset} replaces the callback list"
        # `callbacks+` appends: presets of any kinds add their callbacks in either order.
        for path in paths - {("trainer", "callbacks+")}:
            owners.setdefault(path, set()).add(preset.parent.name)
    shared = {path: kinds for path, kinds in owners.items() if len(kinds) > 1}
    assert not shared, f"keys set by presets of several kinds: {shared}"


def _check_callbacks_and_logger(config, presets) -> None:
    names = {callback.class_path for callback in config.trainer.callbacks}
    assert EXPECTED_CALLBACKS <= names, (presets, EXPECTED_CALLBACKS - names)
    for preset in presets:  # each preset's own keys win
        if preset.parent.name == "logger":
            logger = yaml.safe_load(preset.read_text())["trainer"]["logger"]
            assert config.trainer.logger.class_path == logger["class_path"]


@pytest.mark.parametrize("main_config", MAIN_CONFIGS, ids=lambda p: p.stem)
def test_every_preset_keeps_the_main_configs_callbacks(main_config):
    for preset in PRESETS:
        _check_callbacks_and_logger(_resolved(main_config, preset), [preset])


def _sets_trainer_keys(preset: Path) -> bool:
    return any(path[0] == "trainer" for path in _key_paths(yaml.safe_load(preset.read_text())))


def test_every_pair_of_presets_keeps_the_callbacks():
    # One order per pair: the disjoint-keys test above makes the other order equivalent.
    # The callbacks and the logger are trainer keys, and keys of different kinds are
    # disjoint (test above): a preset that sets no trainer key (model, data or weighting
    # presets) cannot drop or replace them beside another, and each preset alone is checked
    # above. So only the pairs of two presets that both set trainer keys (callbacks+,
    # logger, precision, budgets) can interact; the pairs grow with the square of those.
    presets = [p for p in PRESETS if _sets_trainer_keys(p)]
    assert {p.parent.name for p in presets} >= {"logger", "trainer", "diagnostics", "budgets"}
    for first, second in itertools.combinations(presets, 2):
        if first.parent != second.parent:
            config = _resolved(ROOT / "quickstart.yaml", first, second)
            _check_callbacks_and_logger(config, [first, second])


def _expected_tasks(weighting: Path, task_set: Path | None) -> list[str]:
    tasks = ["semantic", "instance", "depth"]
    if task_set is not None:
        active = yaml.safe_load(task_set.read_text())["model"]["active_tasks"]
        tasks = [task for task in tasks if task in active]
    init = yaml.safe_load(weighting.read_text())["model"]["weighting"].get("init_args") or {}
    weights = init.get("weights")
    if weights is not None:
        tasks = [task for task in tasks if weights.get(task, 0) > 0]
    return tasks


@pytest.mark.parametrize("weighting", WEIGHTING, ids=lambda p: p.stem)
def test_monitored_metric_follows_the_active_tasks(weighting):
    # Fixed weights interact with task sets; any other method is checked on two of them.
    interacts = "weights:" in weighting.read_text() or weighting.stem.startswith("uncertainty")
    for task_set in TASK_SETS if interacts else TASK_SETS[:2]:
        configs = [ROOT / "quickstart.yaml", weighting] + ([task_set] if task_set else [])
        args = [item for config in configs for item in ("--config", str(config))]
        args += ["--model.backbone.init_args.aspp_channels", "8"]
        expected = _expected_tasks(weighting, task_set)
        fixed = "weights:" in weighting.read_text()
        if fixed and task_set is not None:
            weights = yaml.safe_load(weighting.read_text())["model"]["weighting"]["init_args"]
            off = [t for t, w in weights["weights"].items() if w > 0 and t not in expected]
            if off or not expected:
                # A fixed weight on a task the task set dropped is a contradiction: say so.
                with pytest.raises(ValueError, match="active|at least one"):
                    build_cli(args, run=False)
                continue
        cli = build_cli(args, run=False)
        assert list(cli.model.heads) == expected
        first = expected[0]
        key, mode = cli.model.monitored_metric
        assert key == f"val/{first}/{cli.model.heads[first].monitor_metric}"
        assert mode == ("max" if first == "semantic" else "min")


SINGLE_TASK = ["semantic_only", "instance_only", "depth_only"]


@pytest.mark.parametrize("preset", [*SINGLE_TASK, "tasks/instance_depth"])
def test_fit_with_a_task_switched_off_checkpoints_on_an_existing_metric(preset):
    path = ROOT / (f"weighting/{preset}.yaml" if "/" not in preset else f"{preset}.yaml")
    cli = build_cli(
        ["fit", "--config", TINY, "--config", str(path)]
        + ["--config", str(ROOT / "logger/wandb.yaml")]
        + ["--trainer.logger.init_args.save_dir", "wandb_runs"]
    )
    checkpoint = next(c for c in cli.trainer.callbacks if isinstance(c, TaskCheckpoint))
    assert checkpoint.monitor in cli.trainer.callback_metrics
    assert checkpoint.monitor.split("/")[1] in cli.model.heads
    assert Path(checkpoint.best_model_path).is_file()


def test_quickstart_predict_with_the_wandb_preset_still_writes_pictures():
    """The W&B preset used to replace the callback list and drop the prediction writer."""
    cli = build_cli(["fit", "--config", TINY])
    ckpt = cli.trainer.checkpoint_callback.last_model_path
    # The quick start's config, shrunk to the tiny network the checkpoint holds.
    shrink = [
        "--model.backbone.init_args.aspp_channels=16",
        "--model.weighting.init_args.lr=0.05",  # as trained: a different model would stop
        "--model.tasks={semantic: {hidden_channels: 8, num_layers: 1}, instance: "
        "{hidden_channels: 8, num_layers: 1}, depth: {hidden_channels: 8, num_layers: 1}}",
        "--data.root=data/tiny_synthetic",
        "--data.size=[32, 64]",
        "--data.num_workers=0",
        "--data.synthetic_images={train: 4, val: 2, test: 2}",
        "--trainer.accelerator=cpu",
        "--trainer.limit_predict_batches=1",
    ]
    build_cli(
        ["predict", "--config", str(ROOT / "quickstart.yaml"), "--config"]
        + [str(ROOT / "logger/wandb.yaml"), "--trainer.logger.init_args.save_dir=wandb_runs"]
        + [*shrink, "--ckpt_path", ckpt]
    )
    assert sorted(Path("runs/quickstart/predictions/pictures").glob("*_panel.png"))
