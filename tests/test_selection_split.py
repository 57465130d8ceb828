"""Selection apart from reporting: a seeded selection split carved from train
(``val_from_train``), and experiments refused when they would select on the images they
report. The data are generated in the real formats, so a leak shows in the file lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlscene.data import CityscapesDataModule, FolderDataModule, NYUv2DataModule, synthetic
from mtlscene.data.cityscapes.dataset import CityscapesMultiTask
from mtlscene.data.cityscapes.layout import IMAGE_SUFFIX
from mtlscene.data.nyuv2.synthetic import generate_dataset as generate_indoor
from mtlscene.data.split_files import shared_images
from mtlscene.experiments.cli import main as experiment_main
from mtlscene.experiments.definition import load_experiment
from mtlscene.experiments.selection import (
    Selection,
    SelectionError,
    check_experiment,
    data_module,
    leak,
    row_args,
)

CONF = Path(__file__).parent / "conf"
CONFIGS = Path(__file__).parents[1] / "configs"


def _cityscapes(tmp_path: Path, real: bool = False) -> Path:
    """8 train, 2 val, 2 test frames; ``real``: without the synthetic marker, so that (as on
    a CityScapes root) ``test`` evaluates ``val``."""
    root = synthetic.generate_dataset(tmp_path / "cs", {"train": 8, "val": 2, "test": 2}, 16, 32)
    if real:
        (root / synthetic.MARKER_NAME).unlink()
    return root


def _stem(path: Path) -> str:
    return path.name[: -len(IMAGE_SUFFIX)]


def test_val_from_train_carves_a_seeded_disjoint_selection_split(tmp_path):
    root = _cityscapes(tmp_path)
    original = {p.resolve() for p in (root / "leftImg8bit" / "train").glob(f"*/*{IMAGE_SUFFIX}")}

    def module(seed: int = 0, workers: int = 0, amount: float = 0.25) -> CityscapesDataModule:
        data = CityscapesDataModule(
            str(root),
            size=(16, 32),
            batch_size=2,
            num_workers=workers,
            val_from_train=amount,
            split_seed=seed,
        )
        data.setup("fit")
        return data

    data = module()
    train, val, test = (data.split_files(role) for role in ("train", "val", "test"))
    assert len(val.files) == 2 and len(train.files) == 6  # 0.25 of 8
    assert not train.files & val.files and train.files | val.files == original
    assert shared_images(val, test) is None and "carved from train" in val.description
    # The loaders serve exactly those files: the held-out frames unaugmented, the rest trained.
    served_val = {item["name"] for item in data.val_dataloader().dataset}
    assert served_val == {_stem(p) for p in val.files}
    training = data.train_dataloader().dataset
    assert {training[(i, 0)]["name"] for i in range(len(training))} == {
        _stem(p) for p in train.files
    }
    # Seeded: the same with data loader workers, different under another split_seed; a
    # whole count holds out that many.
    with_workers = module(workers=2)
    names = [name for batch in with_workers.val_dataloader() for name in batch["name"]]
    assert sorted(names) == sorted(served_val)
    assert {module(seed).split_files("val").files for seed in (1, 2, 3)} - {val.files}
    assert len(module(amount=3).split_files("val").files) == 3
    # Off (the quick start's default): train and val are the splits themselves, as before.
    plain = CityscapesDataModule(str(root), size=(16, 32), num_workers=0)
    plain.setup("fit")
    assert type(plain.train_dataloader().dataset) is CityscapesMultiTask
    assert len(plain.train_dataloader().dataset) == 8
    assert plain.val_dataloader().dataset.split == "val"


def test_bad_val_from_train_names_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"data\.val_from_train is 2\.5: give a fraction"):
        CityscapesDataModule(str(tmp_path), val_from_train=2.5)
    data = CityscapesDataModule(str(_cityscapes(tmp_path)), val_from_train=8, num_workers=0)
    with pytest.raises(ValueError, match="holds out 8 of the 8 training images"):
        data.setup("fit")


def test_nyuv2_fraction_and_count_carve_the_same_way(tmp_path):
    root = generate_indoor(tmp_path / "nyu", {"train": 10, "val": 3}, 24, 32, progress=False)
    by_count = NYUv2DataModule(str(root), num_workers=0, val_from_train=3)
    by_fraction = NYUv2DataModule(str(root), num_workers=0, val_from_train=0.3)
    assert by_count.held_out() == by_fraction.held_out()
    val, test = by_count.split_files("val"), by_count.split_files("test")
    assert len(val.files) == 3 and shared_images(val, test) is None
    assert not val.files & by_count.split_files("train").files
    standard = NYUv2DataModule(str(root), num_workers=0)  # the literature's protocol
    why = shared_images(standard.split_files("val"), standard.split_files("test"))
    assert why == "3 image(s) are in both, e.g. " + str(
        sorted(standard.split_files("val").files)[0]
    )


def _folder(tmp_path: Path, val: str, test: str) -> Path:
    """A folder dataset (images + semantic labels) with the given split files."""
    import numpy as np
    import yaml
    from PIL import Image

    root = tmp_path / "mine"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate("abcdefg"):
        Image.fromarray(np.full((4, 6, 3), 30 * index, np.uint8)).save(
            root / "images" / f"{stem}.png"
        )
        Image.fromarray(np.full((4, 6), index % 2, np.uint8)).save(root / "labels" / f"{stem}.png")
    (root / "train.txt").write_text("a\nb\nc\nd\n")
    (root / "val.txt").write_text(val)
    (root / "test.txt").write_text(test)
    spec = {
        "classes": ["x", "y"],
        "targets": {"semantic": "labels"},
        "splits": {"train": "train.txt", "val": "val.txt", "test": "test.txt"},
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_folder_splits_under_other_names_that_list_the_same_image_leak(tmp_path):
    root = _folder(tmp_path, val="e\nf\n", test="g\nf\n")  # f in both: names alone miss it
    data = FolderDataModule(str(root), num_workers=0)
    why = shared_images(data.split_files("val"), data.split_files("test"))
    assert why == f"1 image(s) are in both, e.g. {(root / 'images' / 'f.png').resolve()}"
    carved = FolderDataModule(str(root), num_workers=0, val_from_train=0.5, split_seed=4)
    val, train = carved.split_files("val"), carved.split_files("train")
    assert shared_images(val, carved.split_files("test")) is None
    assert len(val.files) == 2 and not val.files & train.files
    assert {p.stem for p in val.files | train.files} == set("abcd")
    carved.setup("fit")
    assert {carved.validation_dataset()[i]["name"] for i in range(2)} == {p.stem for p in val.files}


def _experiment(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: leak\nbase: [{CONF / 'tiny.yaml'}]\nseeds: 1\nrows:\n"
        '  - {name: "sem only", weights: {semantic: 1, depth: 0}}\n'
        '  - {name: "depth only", weights: {semantic: 0, depth: 1}}\n'
        "  - {name: learned, weighting: uncertainty, tasks: [semantic, depth]}\n" + body
    )
    return path


SEARCH = (
    'search:\n  tasks: [semantic, depth]\n  n_trials: 1\n  baselines: ["sem only", "depth only"]\n'
)


def test_a_search_that_reports_on_its_selection_images_is_refused(tmp_path, capsys):
    root = _cityscapes(tmp_path, real=True)  # test evaluates val, as on CityScapes
    experiment = _experiment(tmp_path, SEARCH)
    out = tmp_path / "out"
    at_root = ["--override", f"data.root={root}", "--override", "data.synthetic=false"]
    with pytest.raises(SystemExit) as stop:
        experiment_main(["search", str(experiment), "--out", str(out), *at_root])
    folder = (root / "leftImg8bit" / "val").resolve()
    assert str(stop.value) == (
        f"search selects on <val: {folder}, 2 images> and reports on <test evaluates val: "
        f"{folder}, 2 images>: 2 image(s) are in both, e.g. {sorted(folder.glob('*/*'))[0]}; "
        "set data.val_from_train (e.g. --override data.init_args.val_from_train=0.2) so "
        "that selection scores on images carved from train"
    )
    assert not list(out.rglob("spec.json"))  # refused before anything ran
    # Carved from train, the same search passes the check.
    loaded = load_experiment(experiment)
    carved = [f"--data.root={root}", "--data.synthetic=false", "--data.val_from_train=0.25"]
    selecting = row_args(loaded, loaded.rows[0], carved)
    reports = tuple(row_args(loaded, row, carved) for row in loaded.rows)
    assert leak(Selection("search", selecting, reports)) is None


def test_the_shipped_searches_select_on_images_carved_from_train():
    for name in ("search_semantic_depth", "search_three_tasks"):
        experiment = load_experiment(name)
        module = data_module(row_args(experiment, experiment.rows[0], []))
        assert module.val_from_train == 0.2, name
        assert module.split_files("val").description.startswith("val: carved from train")


def test_a_search_is_reported_on_seeds_its_trials_never_used(tmp_path):
    experiment = _experiment(tmp_path, SEARCH + "  trial_seed: 2\n")
    with pytest.raises(SystemExit, match=r"trial_seed is 2, one of the comparison's seeds 0\.\.2"):
        experiment_main(["search", str(experiment), "--seeds", "3", "--out", str(tmp_path / "o")])


def test_early_stopping_and_grouping_on_the_report_images_are_refused(tmp_path):
    root = _cityscapes(tmp_path, real=True)
    at_root = [f"--data.root={root}", "--data.synthetic=false"]
    stopping = {
        "class_path": "lightning.pytorch.callbacks.EarlyStopping",
        "init_args": {"monitor": "val/semantic/miou", "mode": "max"},
    }
    body = (
        "  - name: stops early\n    weighting: uncertainty\n"
        f"    overrides: ['--trainer.callbacks+={json.dumps(stopping)}']\n"
    )
    experiment = load_experiment(_experiment(tmp_path, body))
    with pytest.raises(SelectionError, match=r"^early stopping in row 'stops early' selects on"):
        check_experiment(experiment, at_root)
    check_experiment(experiment, [*at_root, "--data.val_from_train=2"])  # carved: accepted
    grouping = _experiment(tmp_path, "grouping: {measured_row: learned, groups: 2}\n")
    out = tmp_path / "out"
    overrides = [f"data.root={root}", "data.synthetic=false"]
    with pytest.raises(SystemExit, match=r"^grouping selects on <val: .*test evaluates val"):
        experiment_main(
            ["run", str(grouping), "--out", str(out)]
            + [arg for override in overrides for arg in ("--override", override)]
        )
    assert not list(out.rglob("spec.json"))  # refused before anything ran
    own_test = [f"--data.root={_cityscapes(tmp_path / 's')}"]  # synthetic: its own test split
    check_experiment(load_experiment(grouping), own_test)


def _result(row: str, tasks: list[str], val: dict, test: dict) -> dict:
    """A finished run of seed 0 with its final validation and test metrics."""
    keys = {"semantic": "miou", "instance": "mae", "depth": "mae"}
    return {
        "row": row,
        "seed": 0,
        "tasks": tasks,
        "val": {f"val/{t}/{keys[t]}": v for t, v in val.items()},
        "test": {f"test/{t}/{keys[t]}": v for t, v in test.items()},
    }


def test_a_grouping_is_chosen_on_validation_and_reported_on_test():
    from mtlscene.experiments.grouping_experiment import report_lines

    tasks = ["semantic", "instance", "depth"]
    single = {"semantic": 0.5, "instance": 1.0, "depth": 1.0}
    results = [_result(f"{t} only", [t], {t: v}, {t: v}) for t, v in single.items()]
    results.append(_result("all", tasks, single, single))
    # {instance, depth} is 10 % better on validation but 10 % worse on test; {semantic,
    # depth} is level on validation and 10 % better on test: a choice on test would take it.
    results += [
        _result(
            "Group: instance + depth",
            ["instance", "depth"],
            {"instance": 0.9, "depth": 0.9},
            {"instance": 1.1, "depth": 1.1},
        ),
        _result(
            "Group: semantic + depth",
            ["semantic", "depth"],
            {"semantic": 0.5, "depth": 1.0},
            {"semantic": 0.55, "depth": 0.9},
        ),
        _result(
            "Group: semantic + instance",
            ["semantic", "instance"],
            {"semantic": 0.45, "instance": 1.1},
            {"semantic": 0.45, "instance": 1.1},
        ),
    ]
    partitions = [
        [["semantic"], ["instance", "depth"]],
        [["instance"], ["semantic", "depth"]],
        [["depth"], ["semantic", "instance"]],
    ]
    decision = {
        "measured_row": "all",
        "groups": 2,
        "tasks": tasks,
        "seeds": [0],
        "steps_per_run": [1],
        "lookahead": "sgd",
        "mean": [[0.0] * 3] * 3,
        "std": [[0.0] * 3] * 3,
        "ranked": {"2": [{"groups": g, "score": 0.0} for g in partitions]},
        "suggested": {"groups": partitions[0], "score": 0.0},
        "check": "all",
    }
    lines = report_lines(results, decision)
    assert "| 2 | {instance} {semantic, depth} | +0.0000 | 0.00 ± 0.00 | -6.67 ± 0.00 |" in lines
    assert lines[-1] == (
        "Chosen on the validation split: {semantic} {instance, depth}, reported on test at "
        "6.67 ± 0.00 Δm %."
    )
