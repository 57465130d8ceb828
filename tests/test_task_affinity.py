"""Inter-task affinity (TAG lookahead), the grouping search, its callback and experiment."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import operator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.plugins.precision import Precision
from torch import nn

from mtlscene.callbacks.task_affinity import TaskAffinity
from mtlscene.cli.main import build_cli
from mtlscene.relationships.affinity import (
    AdamPreconditioner,
    lookahead_affinity,
    optimizer_lookahead,
)
from mtlscene.relationships.grouping import (
    grouping_score,
    groupings_by_size,
    rank_groupings,
    rank_overlapping_groupings,
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


# --- Closed-form affinity of a linear toy (issue 29) and the weighted lookahead (issue 27) ---

LINEAR_TASKS = ("a", "b", "c")
# Task b has 10x larger heads (100x the curvature, 10x the gradients) and a small weight, as
# uncertainty weighting gives a task with large losses: the case where an unweighted
# gradient over Adam's weighted second moment overshoots.
LINEAR_WEIGHTS = {"a": 1.0, "b": 0.01, "c": 0.5}
BETAS, EPS, LR, HISTORY = (0.9, 0.999), 1e-8, 0.01, 5


class _FixedWeights(nn.Module):
    def weights(self) -> dict[str, torch.Tensor]:
        return {t: torch.tensor(w, dtype=torch.float64) for t, w in LINEAR_WEIGHTS.items()}

    def prediction_scales(self) -> dict[str, torch.Tensor]:
        return {}


class _LinearToy(LightningModule):
    """Shared ``h = x W^T`` (the encoder), fixed heads ``a_t``: ``L_t = mean((h a_t - y_t)^2)``."""

    def __init__(self, heads: torch.Tensor) -> None:
        super().__init__()
        self.network = nn.Module()
        self.network.encoder = nn.Linear(4, 3, bias=False).double()
        self.register_buffer("heads", heads)
        self.weighting = _FixedWeights()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.network.encoder(image)
        return {t: shared @ self.heads[n] for n, t in enumerate(LINEAR_TASKS)}

    def task_losses(self, outputs, batch) -> dict[str, torch.Tensor]:
        return {t: ((outputs[t] - batch[t]) ** 2).mean() for t in LINEAR_TASKS}


def _linear_setup():
    """The toy after HISTORY Adam steps on the weighted total, and the same by hand (numpy).

    Well conditioned: orthogonal input columns (X^T X = N I) and one optimum W* shared by
    all tasks, started 0.1 away from it.
    """
    generator = torch.Generator().manual_seed(0)
    n = 32
    q, _ = torch.linalg.qr(torch.randn(n, 4, generator=generator, dtype=torch.float64))
    x = q * n**0.5
    heads = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    heads[1] *= 10.0
    optimum = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    start = optimum + 0.1 * torch.randn(3, 4, generator=generator, dtype=torch.float64)
    batch = {"image": x, **{t: x @ optimum.T @ heads[k] for k, t in enumerate(LINEAR_TASKS)}}
    model = _LinearToy(heads)
    with torch.no_grad():
        model.network.encoder.weight.copy_(start)
    optimizer = torch.optim.Adam(model.network.encoder.parameters(), lr=LR, betas=BETAS, eps=EPS)
    for _ in range(HISTORY):
        losses = model.task_losses(model(x), batch)
        optimizer.zero_grad()
        sum(LINEAR_WEIGHTS[t] * losses[t] for t in LINEAR_TASKS).backward()
        optimizer.step()

    # By hand: gradients in closed form, Adam written out.
    xs, a = x.numpy(), heads.numpy()
    ys = {t: batch[t].numpy() for t in LINEAR_TASKS}

    def loss(w, k):
        residual = xs @ w.T @ a[k] - ys[LINEAR_TASKS[k]]
        return float(residual @ residual) / n

    def gradient(w, k):  # dL_k/dW = (2/N) a_k (X^T r_k)^T
        residual = xs @ w.T @ a[k] - ys[LINEAR_TASKS[k]]
        return 2.0 / n * np.outer(a[k], xs.T @ residual)

    w, m, v = start.numpy().copy(), np.zeros((3, 4)), np.zeros((3, 4))
    for step in range(1, HISTORY + 1):
        g = sum(LINEAR_WEIGHTS[t] * gradient(w, k) for k, t in enumerate(LINEAR_TASKS))
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        m_hat, v_hat = m / (1 - BETAS[0] ** step), v / (1 - BETAS[1] ** step)
        w = w - LR * m_hat / (np.sqrt(v_hat) + EPS)
    # The hand-made Adam is the optimizer's (else the reference below would be of nothing).
    np.testing.assert_allclose(model.network.encoder.weight.detach().numpy(), w, rtol=1e-12)

    def expected(step: str) -> np.ndarray:
        """Z(i -> j) = 1 - L_j(W - lr u_i) / L_j(W), u_i from the weighted gradient w_i g_i."""
        z = np.zeros((3, 3))
        for i, task in enumerate(LINEAR_TASKS):
            g = LINEAR_WEIGHTS[task] * gradient(w, i)
            if step == "adam":  # Adam's second moment, bias-corrected, without momentum
                v_next = BETAS[1] * v + (1 - BETAS[1]) * g * g
                u = g / (np.sqrt(v_next / (1 - BETAS[1] ** (HISTORY + 1))) + EPS)
            else:
                u = g
            for j in range(3):
                z[i, j] = 1.0 - loss(w - LR * u, j) / loss(w, j)
        return z

    trainer = SimpleNamespace(optimizers=[optimizer], precision_plugin=Precision())
    return model, batch, trainer, expected


@pytest.mark.parametrize("step", ["sgd", "adam"])
def test_callback_affinity_matches_the_closed_form_of_a_linear_model(step):
    model, batch, trainer, expected = _linear_setup()
    before = model.network.encoder.weight.detach().clone()
    tasks, z = TaskAffinity(step=step).measure(trainer, model, batch)
    assert tasks == list(LINEAR_TASKS)
    reference = expected(step)
    # Affinities of a few percent to tens of percent: a 5x step, a dropped preconditioner
    # or an absolute loss change moves them far beyond this tolerance.
    assert np.abs(reference).max() > 0.05
    np.testing.assert_allclose(z.numpy(), reference, rtol=1e-6, atol=1e-9)
    assert torch.equal(model.network.encoder.weight, before)


def test_self_affinity_is_positive_for_every_task_with_both_lookaheads():
    # An unweighted gradient over Adam's weighted second moment takes task b's step 1 / w_b
    # times too long: its own loss rises (Z(b -> b) < 0). Weighted, every step helps itself.
    model, batch, trainer, _ = _linear_setup()
    for step in ("sgd", "adam"):
        callback = TaskAffinity(step=step)
        _, z = callback.measure(trainer, model, batch)
        assert callback.lookahead == step
        assert (z.diag() > 0).all(), f"{step}: self-affinity {z.diag().tolist()}"


def _overlap_brute_force(matrix, k):
    """Best TAG score over every k-tuple of distinct groups covering the tasks (bitmasks)."""
    size = len(matrix)

    def onto(j, members):  # mean affinity onto j from the other members, 0 alone
        others = [i for i in members if i != j]
        return sum(matrix[i][j] for i in others) / len(others) if others else 0.0

    best = -float("inf")
    for masks in itertools.product(range(1, 2**size), repeat=k):
        if len(set(masks)) < k or functools.reduce(operator.or_, masks) != 2**size - 1:
            continue
        groups = [[t for t in range(size) if mask >> t & 1] for mask in masks]
        best = max(best, sum(max(onto(j, g) for g in groups if j in g) for j in range(size)))
    return best


def test_overlapping_selection_matches_brute_force_and_beats_the_partition_when_it_should():
    # a helps b and c; b and c hurt each other. Any partition into 2 keeps one of them from
    # a (best: 0.4 + 0.1 or 0.3 + 0.2 = 0.5); TAG's overlapping {a, b} {a, c} serves both.
    hand = [[0.5, 0.4, 0.3], [0.1, 0.5, -0.6], [0.2, -0.5, 0.5]]
    tasks = ["a", "b", "c"]
    assert rank_groupings(hand, tasks, 2)[0].score == pytest.approx(0.5)
    best = rank_overlapping_groupings(hand, tasks, 2)[0]
    assert best.groups == (("a", "b"), ("a", "c"))
    # a: the better of Z(b -> a) = 0.1 and Z(c -> a) = 0.2; b: Z(a -> b); c: Z(a -> c).
    assert best.score == pytest.approx(0.2 + 0.4 + 0.3)
    assert dict(best.serves) == {"a": 1, "b": 0, "c": 1}
    assert best.score == pytest.approx(_overlap_brute_force(hand, 2))
    # A random 4-task matrix, every k: the search finds the brute-force optimum, and never
    # less than the best partition (a partition is one of its choices).
    generator = torch.Generator().manual_seed(5)
    matrix = (torch.rand(4, 4, generator=generator) * 2 - 1).tolist()
    names = ["t0", "t1", "t2", "t3"]
    for k in (1, 2, 3):
        ranked = rank_overlapping_groupings(matrix, names, k)
        assert ranked[0].score == pytest.approx(_overlap_brute_force(matrix, k))
        assert ranked[0].score >= rank_groupings(matrix, names, k)[0].score - 1e-12
        assert [g.score for g in ranked] == sorted((g.score for g in ranked), reverse=True)
        assert all(len(g.groups) == k for g in ranked)
    with pytest.raises(ValueError, match=r"C\(2\^8 - 1, 3\) = 2731135 choices"):
        rank_overlapping_groupings([[0.0] * 8] * 8, [str(i) for i in range(8)], 3)


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
    assert summary["lookahead"] == "sgd"  # the default lookahead
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


@pytest.mark.slow
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
    # TAG's overlapping selection beside it; its groups that serve a task are trained too.
    overlap = rank_overlapping_groupings(stored["matrix"], stored["tasks"], 2)[0]
    assert decision["overlapping"]["groups"] == [list(g) for g in overlap.groups]
    serving = {task: list(overlap.groups[index]) for task, index in overlap.serves}
    assert decision["overlapping"]["serves"] == serving
    assert f"**Overlapping suggestion for 2 groups: {overlap.label()}** " in report
    assert "Trained, each task's metric from the run of the group serving it" in report
    group_rows = {tuple(g) for g in best.groups if len(g) > 1}
    group_rows |= {tuple(g) for g in serving.values() if len(g) > 1}
    for group in group_rows:
        assert (out / "runs" / ("group_" + "_".join(group)) / "seed0" / "result.json").is_file()
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
    assert not outcome["done"] and len(outcome["skipped"]) == 4 + len(group_rows)
    assert json.loads((out / "grouping.json").read_text())["suggested"] == decision["suggested"]
    assert f"**Suggested for 2 groups: {best.label()}.**" in (out / "grouping.md").read_text()
    # `summarize` rewrites both from the stored files, the group rows in table.md included.
    (out / "grouping.md").unlink()
    (out / "table.md").unlink()
    assert experiment_main(["summarize", str(out)]) == 0
    assert (out / "grouping.md").read_text() == report
    assert "Group: " + " + ".join(pair) in (out / "table.md").read_text()


def test_affinity_lookahead_choice_is_checked():
    assert TaskAffinity().step == "sgd" and TaskAffinity(step="adam").step == "adam"
    with pytest.raises(ValueError, match="step must be one of"):
        TaskAffinity(step="optimizer")
    # step: adam with an optimizer that has no second moment is refused before training.
    model = _LinearToy(torch.ones(3, 3, dtype=torch.float64))
    optimizer = torch.optim.SGD(model.network.encoder.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="needs an Adam-like optimizer .* is SGD; use step: sgd"):
        TaskAffinity(step="adam").on_fit_start(SimpleNamespace(optimizers=[optimizer]), model)


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
    # The overlapping suggestion's serving groups are trained too (a singleton is its
    # single-task row; a group already trained is not trained twice).
    pair = decision["suggested"]["groups"][1]
    decision["overlapping"] = {
        "serves": {"semantic": ["semantic", "depth"], "instance": pair, "depth": pair}
    }
    assert sorted(row.tasks for row in group_rows(experiment, decision)) == sorted(
        [tuple(pair), ("semantic", "depth")]
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONF.parent.parent / "configs/experiments/affinity.yaml")
        .read_text()
        .replace("check: all", "check: every")
    )
    with pytest.raises(ValueError, match="grouping.check must be one of"):
        load_experiment(bad)
