"""Inter-task affinity (TAG lookahead), the grouping search, its callback and experiment."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mtlscene.main import build_cli
from mtlscene.relationships.affinity import (
    AdamPreconditioner,
    lookahead_affinity,
    optimizer_lookahead,
)
from mtlscene.relationships.grouping import (
    grouping_score,
    groupings_by_size,
    rank_groupings,
    set_partitions,
)

CONF = Path(__file__).parent / "conf"
TINY = str(CONF / "tiny.yaml")


def _toy():
    """A shared linear layer, three tasks: a, its identical twin b, and c with -y targets."""
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]).unsqueeze(1)
    shared = nn.Linear(4, 1)

    def losses():
        out = shared(x)
        return {
            "a": nn.functional.mse_loss(out, y),
            "b": nn.functional.mse_loss(out, y),
            "c": nn.functional.mse_loss(out, -y),
        }

    return shared, losses


@pytest.mark.parametrize("adam", [False, True])
def test_identical_tasks_have_positive_affinity_and_opposed_ones_negative(adam):
    shared, losses = _toy()
    params = list(shared.parameters())
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=0.01) if adam else torch.optim.SGD(params, lr=0.01)
    lr, precondition, kind = optimizer_lookahead(optimizer, params)
    assert kind == ("adam" if adam else "sgd") and lr == 0.01
    tasks, z = lookahead_affinity(params, losses, lr, precondition)
    a, b, c = (tasks.index(t) for t in "abc")
    assert z[a, a] > 0 and z[a, b] > 0 and z[b, a] > 0
    assert z[a, b] == pytest.approx(float(z[a, a]))  # the twin gains what a itself gains
    assert z[a, c] < 0 and z[c, a] < 0
    # The shared parameters are back where they were, bit for bit, and no .grad was left.
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
    assert all(p.grad is None for p in params)


def test_adam_preconditioner_is_the_step_adam_takes_without_momentum():
    torch.manual_seed(0)
    param = nn.Parameter(torch.randn(5))
    optimizer = torch.optim.Adam([param], lr=0.1, betas=(0.0, 0.9), eps=1e-8)
    for _ in range(3):  # some second-moment history
        param.grad = torch.randn(5)
        optimizer.step()
    grad = torch.randn(5)
    _, precondition, _ = optimizer_lookahead(optimizer, [param])
    assert isinstance(precondition, AdamPreconditioner)
    expected = param.detach() - 0.1 * precondition(param, grad)
    param.grad = grad
    optimizer.step()  # beta1 = 0: Adam's update is exactly the preconditioned gradient
    assert torch.allclose(param.detach(), expected, atol=1e-6)


def _brute_force(matrix, tasks, k):
    """Best score by labelling each task with a group number: k^T labellings."""
    best = -float("inf")
    for labels in itertools.product(range(k), repeat=len(tasks)):
        if len(set(labels)) != k:
            continue
        groups = [[t for t in range(len(tasks)) if labels[t] == g] for g in range(k)]
        best = max(best, grouping_score(matrix, groups))
    return best


def test_grouping_search_matches_brute_force_and_a_hand_checked_case():
    # Stirling numbers of the second kind: S(5, k) = 1, 15, 25, 10, 1.
    assert [len(list(set_partitions(range(5), k))) for k in range(1, 6)] == [1, 15, 25, 10, 1]
    generator = torch.Generator().manual_seed(3)
    tasks = [f"t{i}" for i in range(5)]
    matrix = (torch.rand(5, 5, generator=generator) * 2 - 1).tolist()
    for k, ranked in groupings_by_size(matrix, tasks).items():
        assert ranked[0].score == pytest.approx(_brute_force(matrix, tasks, k))
        assert [g.score for g in ranked] == sorted((g.score for g in ranked), reverse=True)
        for grouping in ranked:
            assert sorted(t for group in grouping.groups for t in group) == tasks
    # By hand: a and b help each other (0.3, 0.1), c hurts both and is hurt by them.
    hand = [[0.5, 0.3, -0.2], [0.1, 0.5, -0.1], [-0.4, -0.3, 0.5]]
    two = rank_groupings(hand, ["a", "b", "c"], 2)
    assert two[0].groups == (("a", "b"), ("c",))
    assert two[0].score == pytest.approx(0.1 + 0.3)  # onto a: Z(b->a); onto b: Z(a->b)
    one = rank_groupings(hand, ["a", "b", "c"], 1)[0]
    # Each task: the mean of the two others' affinity onto it.
    assert one.score == pytest.approx((0.1 - 0.4) / 2 + (0.3 - 0.3) / 2 + (-0.2 - 0.1) / 2)
    assert rank_groupings(hand, ["a", "b", "c"], 3)[0].score == 0.0
    with pytest.raises(ValueError, match="at most 8 tasks"):
        rank_groupings([[0.0] * 9] * 9, [str(i) for i in range(9)], 2)


def _affinity_config(tmp_path: Path, every: int) -> str:
    path = tmp_path / "affinity.yaml"
    path.write_text(
        "trainer:\n  callbacks+:\n"
        "    - class_path: mtlscene.callbacks.task_affinity.TaskAffinity\n"
        f"      init_args: {{every_n_steps: {every}}}\n"
    )
    return str(path)


def test_callback_leaves_training_unchanged_and_writes_its_files(tmp_path):
    # Three steps over two epochs: the second epoch's shuffle draws from the RNG too.
    common = ["--config", TINY, "--trainer.limit_val_batches=0", "--trainer.max_steps=3"]
    common += ["--trainer.max_epochs=2", "--model.instance_ap=false"]
    plain = build_cli(["fit", *common, "--trainer.default_root_dir=plain"])
    measured = build_cli(
        ["fit", *common, "--config", _affinity_config(tmp_path, 2), "--trainer.default_root_dir=m"]
    )
    first, second = plain.model.state_dict(), measured.model.state_dict()
    assert first.keys() == second.keys()
    changed = [name for name in first if not torch.equal(first[name], second[name])]
    assert not changed, f"the affinity callback changed training: {changed[:5]}"
    # The BatchNorm statistics moved during training, so the comparison above covered them.
    assert any("running_mean" in name for name in first)

    log_dir = Path(measured.trainer.log_dir)
    with (log_dir / "task_affinity.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({int(r["step"]) for r in rows}) == [0, 2]  # every 2 steps, step 0 included
    assert len(rows) == 2 * 9
    summary = json.loads((log_dir / "task_affinity.json").read_text())
    assert summary["tasks"] == ["semantic", "instance", "depth"] and summary["count"] == 2
    assert summary["lookahead"] == "adam"
    by_pair = {(r["i"], r["j"]): [] for r in rows}
    for r in rows:
        by_pair[r["i"], r["j"]].append(float(r["affinity"]))
    for a, i in enumerate(summary["tasks"]):
        for b, j in enumerate(summary["tasks"]):
            assert summary["matrix"][a][b] == pytest.approx(sum(by_pair[i, j]) / 2)
    assert all(value != 0 for row in summary["matrix"] for value in row)
    assert (log_dir / "task_affinity.png").stat().st_size > 5_000
    with (log_dir / "metrics.csv").open() as handle:
        header = next(csv.reader(handle))
    assert "affinity/semantic->depth" in header


def test_affinity_experiment_trains_the_suggested_groups_and_checks_them(tmp_path):
    from mtlscene.experiments import load_experiment, run_experiment
    from mtlscene.experiments.cli import main as experiment_main

    experiment_file = tmp_path / "tiny_affinity.yaml"
    shipped = load_experiment("affinity")
    assert shipped.grouping.measured_row == "All tasks (uncertainty)"
    text = (CONF.parent.parent / "configs/experiments/affinity.yaml").read_text()
    text = text.replace(
        "[quickstart.yaml, recipes/adamw_poly.yaml, budgets/cpu_small.yaml]", f"[{TINY}]"
    )
    text = text.replace(
        "[diagnostics/affinity.yaml, diagnostics/gradients.yaml]",
        f"[{_affinity_config(tmp_path, 2)}]",
    )
    # Only the suggested grouping here (check: all is tested without training below).
    text = text.replace(", check: all", "")
    experiment_file.write_text(text.replace("seeds: 3", "seeds: 1"))
    out = tmp_path / "out"
    assert experiment_main(["run", str(experiment_file), "--out", str(out), "--jobs", "2"]) == 0

    decision = json.loads((out / "grouping.json").read_text())
    measured = json.loads((out / "runs/all_tasks_uncertainty/seed0/result.json").read_text())
    stored = json.loads((Path(measured["log_dir"]) / "task_affinity.json").read_text())
    assert decision["mean"] == stored["matrix"]
    best = rank_groupings(stored["matrix"], stored["tasks"], 2)[0]
    assert decision["suggested"]["groups"] == [list(g) for g in best.groups]
    pair = next(g for g in best.groups if len(g) == 2)
    group_dir = out / "runs" / ("group_" + "_".join(pair)) / "seed0"
    group_result = json.loads((group_dir / "result.json").read_text())
    assert group_result["tasks"] == list(pair)

    report = (out / "grouping.md").read_text()
    assert f"**Suggested for 2 groups: {best.label()}.**" in report
    assert (out / "affinity.png").stat().st_size > 5_000
    # The check: a task of the pair reads its metric from the group's run.
    task = pair[0]
    line = [row for row in report.splitlines() if row.startswith(f"| {task} |")][-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    key, scale, digits = {
        "semantic": ("test/semantic/miou", 100.0, 2),
        "instance": ("test/instance/mae", 1.0, 3),
        "depth": ("test/depth/mae", 1.0, 3),
    }[task]
    zero = f"{0:.{digits}f}"
    assert cells[3] == f"{measured['test'][key] * scale:.{digits}f} ± {zero}"
    assert cells[4] == f"{group_result['test'][key] * scale:.{digits}f} ± {zero}"
    assert "| | networks | 3 | 1 | 2 |" in report
    assert "Δm % (↓) vs one per task" in report
    assert "Group: " + " + ".join(pair) in (out / "table.md").read_text()

    # Again: nothing new is trained, and the stored matrix gives the same grouping.
    outcome = run_experiment(load_experiment(experiment_file), out, echo=lambda *_: None)
    assert not outcome["done"] and len(outcome["skipped"]) == 5
    assert json.loads((out / "grouping.json").read_text())["suggested"] == decision["suggested"]
    assert f"**Suggested for 2 groups: {best.label()}.**" in (out / "grouping.md").read_text()
    # `summarize` rewrites both from the stored files, the group rows in table.md included.
    (out / "grouping.md").unlink()
    (out / "table.md").unlink()
    assert experiment_main(["summarize", str(out)]) == 0
    assert (out / "grouping.md").read_text() == report
    assert "Group: " + " + ".join(pair) in (out / "table.md").read_text()


def test_affinity_lookahead_choice_is_checked():
    from mtlscene.callbacks.task_affinity import TaskAffinity

    assert TaskAffinity(step="sgd").step == "sgd"
    with pytest.raises(ValueError, match="step must be one of"):
        TaskAffinity(step="adam")


def test_check_all_trains_every_group_of_every_grouping_once(tmp_path):
    from mtlscene.experiments import load_experiment
    from mtlscene.experiments.grouping_experiment import checked_groupings, group_rows
    from mtlscene.relationships.grouping import groupings_by_size

    experiment = load_experiment("affinity")
    assert experiment.grouping.check == "all"
    tasks = ["semantic", "instance", "depth"]
    matrix = [[0.1, 0.02, -0.01], [-0.03, 0.1, 0.01], [0.0, 0.02, 0.1]]
    ranked = {
        k: [
            {"groups": [list(g) for g in grouping.groups], "score": grouping.score}
            for grouping in v
        ]
        for k, v in groupings_by_size(matrix, tasks).items()
    }
    decision = {"groups": 2, "ranked": json.loads(json.dumps(ranked)), "check": "all"}
    decision["suggested"] = decision["ranked"]["2"][0]
    assert len(checked_groupings(decision)) == 3  # {a}{b, c} for each of the three tasks
    rows = group_rows(experiment, decision)
    assert sorted(row.tasks for row in rows) == sorted(
        tuple(t for t in tasks if t != alone) for alone in tasks
    )
    assert all("diagnostics" not in c for row in rows for c in row.configs)
    decision["check"] = "suggested"
    assert len(group_rows(experiment, decision)) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONF.parent.parent / "configs/experiments/affinity.yaml")
        .read_text()
        .replace("check: all", "check: every")
    )
    with pytest.raises(ValueError, match="grouping.check must be one of"):
        load_experiment(bad)
