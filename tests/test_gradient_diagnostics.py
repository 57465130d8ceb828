"""Gradient diagnostics: norms, cosines and conflict against hand-computed gradients; the
callback in a fit (CSV, figure, logged scalars, training unchanged); the summary over runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mtlscene.callbacks.gradient_diagnostics import GradientDiagnostics
from mtlscene.cli.main import build_cli
from mtlscene.errors import ConfigError
from mtlscene.experiments.gradient_summary import (
    gradient_summary_figure,
    gradient_summary_table,
    main,
)
from mtlscene.relationships.gradient_stats import (
    gradient_stats,
    gramian,
    task_gradient_gramian,
    task_gradients,
)
from mtlscene.weighting import EqualWeighting, PCGradWeighting

ROOT = Path(__file__).parents[1]
TINY = str(ROOT / "tests" / "conf" / "tiny.yaml")
X = torch.tensor([3.0, 4.0])
U, V = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])


class ToyShared(nn.Module):
    """A shared linear layer W (2x2, no bias) on a fixed input x; task losses u.(Wx), v.(Wx)
    have the gradients u x^T and v x^T at W, written by hand below."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2, bias=False)

    def losses(self, **directions: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.layer(X)
        return {name: direction @ features for name, direction in directions.items()}


def test_norms_cosine_ratio_and_conflict_match_hand_computed_gradients():
    toy = ToyShared()
    losses = toy.losses(a=U, b=V)
    rows = task_gradients(list(losses.values()), list(toy.parameters()))
    assert torch.equal(rows[0], torch.outer(U, X).reshape(-1))
    assert torch.equal(rows[1], torch.outer(V, X).reshape(-1))
    stats = gradient_stats(task_gradient_gramian(list(losses.values()), [toy.layer.weight]), "ab")
    # ||u x^T|| = ||u|| ||x||; cos(u x^T, v x^T) = cos(u, v) = -1/sqrt(2).
    assert stats.norms.tolist() == pytest.approx([5.0, 5.0 * math.sqrt(2)])
    assert stats.pairs == [("a", "b")]
    assert stats.cosine.tolist() == pytest.approx([-1 / math.sqrt(2)])
    assert stats.ratio.tolist() == pytest.approx([1 / math.sqrt(2)])
    assert stats.conflict.tolist() == [True]
    aligned = gradient_stats(task_gradient_gramian(list(toy.losses(a=U, b=2 * U).values()),
                                                   [toy.layer.weight]), "ab")  # fmt: skip
    assert aligned.cosine.tolist() == pytest.approx([1.0]) and aligned.conflict.tolist() == [False]
    assert aligned.ratio.tolist() == pytest.approx([0.5])


def test_per_task_backward_leaves_grad_untouched_and_fills_unreached_parameters_with_zeros():
    toy, other = ToyShared(), nn.Parameter(torch.ones(3))
    toy.layer.weight.grad = torch.full((2, 2), 7.0)
    losses = [*toy.losses(a=U).values(), (other**2).sum(), torch.zeros(())]  # last: no graph
    rows = task_gradients(losses, [toy.layer.weight, other])
    assert torch.equal(toy.layer.weight.grad, torch.full((2, 2), 7.0)) and other.grad is None
    assert torch.equal(rows[0], torch.cat([torch.outer(U, X).reshape(-1), torch.zeros(3)]))
    assert torch.equal(rows[1], torch.cat([torch.zeros(4), 2 * torch.ones(3)]))
    assert torch.equal(rows[2], torch.zeros(7))
    assert torch.equal(gramian(rows), rows @ rows.T)
    # Accumulated per parameter, the same Gramian as from the flattened gradients.
    assert torch.allclose(task_gradient_gramian(losses, [toy.layer.weight, other]), rows @ rows.T)


def test_a_zero_gradient_gives_nan_cosine_and_ratio_and_no_conflict():
    gram = gramian(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]))
    stats = gradient_stats(gram, ["a", "b", "c"])
    assert stats.pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    assert stats.norms.tolist() == [1.0, 0.0, 2.0]
    cosine, ratio = stats.cosine.tolist(), stats.ratio.tolist()
    assert math.isnan(cosine[0]) and math.isnan(cosine[2]) and cosine[1] == pytest.approx(-1.0)
    assert math.isnan(ratio[0]) and math.isnan(ratio[2]) and ratio[1] == pytest.approx(0.5)
    assert stats.conflict.tolist() == [False, True, False]


class ToyHead(nn.Module):
    """Head stand-in: its target is present unless the batch says otherwise."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def target_present(self, batch):
        return torch.tensor(self.name not in batch["absent"])


def _toy_module(weighting, losses):
    toy = ToyShared()
    heads = {name: ToyHead(name) for name in losses}
    weighting.bind({name: "gaussian" for name in losses})
    return SimpleNamespace(
        weighting=weighting,
        step_losses=toy.losses(**losses),
        heads=heads,
        network=SimpleNamespace(encoder=toy),
        toy=toy,
    )


def _measure(callback, module, step: int, absent=()) -> None:
    trainer = SimpleNamespace(global_step=step, is_global_zero=True)
    callback.on_train_batch_start(trainer, module, {"absent": absent}, 0)
    callback.on_before_backward(trainer, module, torch.zeros(()))


def test_callback_measures_every_n_steps_with_nan_for_an_absent_task_and_a_running_share():
    callback = GradientDiagnostics(every_n_steps=10)
    for step, v, absent in [(0, V, ()), (5, V, ()), (10, V, ("b",)), (20, U, ())]:
        module = _toy_module(EqualWeighting(), {"a": U, "b": v})
        _measure(callback, module, step, absent)
    rows = callback.materialize()
    assert [row["step"] for row in rows] == [0, 10, 20]  # step 5 is not measured
    assert rows[0]["cosine"] == pytest.approx(-1 / math.sqrt(2))
    assert rows[1]["norm_b"] == 0.0 and math.isnan(rows[1]["cosine"])
    assert math.isnan(rows[1]["ratio"]) and rows[2]["cosine"] == pytest.approx(1.0)
    # Conflict at 0, undefined at 10 (not counted), aligned at 20.
    assert [row["conflict_share"] for row in rows] == [1.0, 1.0, 0.5]


def test_reused_gramian_of_a_gradient_method_equals_the_backward_path():
    reused, backward = GradientDiagnostics(every_n_steps=1), GradientDiagnostics(every_n_steps=1)
    module = _toy_module(PCGradWeighting(), {"a": U, "b": V})
    module.weighting(module.step_losses, shared=module.toy, heads=module.heads)
    # The backward path would fail here: PCGrad's last pass freed the graph.
    _measure(reused, module, 0)
    _measure(backward, _toy_module(EqualWeighting(), {"a": U, "b": V}), 0)
    (row_reused,), (row_backward,) = reused.materialize(), backward.materialize()
    for key in ("norm_a", "norm_b", "cosine", "ratio"):
        assert row_reused[key] == pytest.approx(row_backward[key])
    assert row_reused["cosine"] == pytest.approx(-1 / math.sqrt(2))


def _fit(*configs: str, callback: GradientDiagnostics | None = None):
    args = ["--config", TINY]
    for config in configs:
        args += ["--config", config]
    cli = build_cli(args, run=False)
    if callback is not None:
        cli.trainer.callbacks.append(callback)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def _same_parameters(first, second) -> bool:
    a, b = dict(first.model.named_parameters()), dict(second.model.named_parameters())
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _check_outputs(callback: GradientDiagnostics) -> None:
    rows = _read(callback.csv_path)
    pairs = {"semantic~instance", "semantic~depth", "instance~depth"}
    assert [int(row["step"]) for row in rows] == [0, 0, 0, 1, 1, 1]  # two steps, three pairs
    assert {f"{row['task_a']}~{row['task_b']}" for row in rows} == pairs
    assert all(float(row["norm_a"]) > 0 and -1 <= float(row["cosine"]) <= 1 for row in rows)
    assert callback.figure_path.is_file() and callback.figure_path.stat().st_size > 10_000
    assert callback.csv_path.parent == callback.figure_path.parent
    logged = _read(callback.csv_path.parent / "metrics.csv")
    cosines = [row["grad/cos/semantic~depth"] for row in logged if row["grad/cos/semantic~depth"]]
    assert len(cosines) == 2 and "grad/norm/instance" in logged[0]


def test_callback_in_a_fit_writes_csv_figure_and_scalars_and_leaves_training_unchanged():
    plain = _fit()
    callback = GradientDiagnostics(every_n_steps=1)
    diagnosed = _fit(callback=callback)
    assert _same_parameters(plain, diagnosed)
    _check_outputs(callback)


def test_with_a_gradient_method_the_callback_reuses_its_gramian_in_a_fit(monkeypatch):
    def no_backward(*args, **kwargs):
        raise AssertionError("the Gramian of PCGrad should be reused, not recomputed")

    monkeypatch.setattr(
        "mtlscene.callbacks.gradient_diagnostics.task_gradient_gramian", no_backward
    )
    callback = GradientDiagnostics(every_n_steps=1)
    _fit(str(ROOT / "configs" / "weighting" / "pcgrad.yaml"), callback=callback)
    _check_outputs(callback)


def test_preset_adds_the_callback():
    cli = build_cli(
        ["--config", TINY, "--config", str(ROOT / "configs/diagnostics/gradients.yaml")],
        run=False,
    )
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, GradientDiagnostics)]
    assert callback.every_n_steps == 10


def _handmade_csv(path: Path, cosines: list[float], ratio: float) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "task_a", "task_b", "norm_a", "norm_b", "cosine", "ratio"])
        for step, cosine in enumerate(cosines):
            writer.writerow([10 * step, "a", "b", 1.0, 1.0, cosine, ratio])
    return path


def test_summary_over_runs_from_handmade_csvs(tmp_path, capsys):
    first = _handmade_csv(tmp_path / "1.csv", [-0.4, -0.2, 0.0, 0.2, 0.4, 0.6], 2.0)
    second = _handmade_csv(tmp_path / "2.csv", [-0.2, 0.0, float("nan"), 0.4, 0.6, 0.8], 4.0)
    table = gradient_summary_table([first, second])
    (row,) = [line for line in table.splitlines() if line.startswith("| a~b")]
    # Early (first third): -0.3 and -0.1; late: 0.5 and 0.7; conflict: 2/6 and 1/5 of the
    # defined steps; ratio 2 and 4.
    cells = [cell.strip() for cell in row.split("|")[2:-1]]
    assert cells == ["-0.20 ± 0.14", "0.60 ± 0.14", "27 ± 9", "3.00 ± 1.41"]
    figure = gradient_summary_figure([first, second])
    (line,) = figure.axes[0].get_lines()[:1]
    assert list(line.get_xdata()) == [0, 10, 20, 30, 40, 50]
    assert line.get_ydata()[2] == pytest.approx(0.0)  # the NaN of run 2 left out
    assert main([str(first), str(second), "--figure", str(tmp_path / "f.png")]) == 0
    assert "| a~b |" in capsys.readouterr().out and (tmp_path / "f.png").is_file()
    with pytest.raises(ConfigError, match="missing.csv: no such file"):
        gradient_summary_table([tmp_path / "missing.csv"])
    (tmp_path / "bad.csv").write_text("step,cosine\n0,1\n")
    with pytest.raises(ConfigError, match=r"bad.csv: columns \['task_a'"):
        gradient_summary_table([tmp_path / "bad.csv"])
