"""Representation-level task gradients (``rep_grad``) for the Jacobian methods.

Where the representation's Jacobian with respect to the shared parameters has orthonormal
rows (a linear encoder ``z = W x`` on orthonormal inputs), the parameter- and
representation-level Gramians coincide, so every method must give the same update either
way; elsewhere they differ, and the encoder is traversed once instead of once per task.
"""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import Callback
from torch import nn

from mtlscene.weighting import (
    AlignedMTLWeighting,
    CAGradWeighting,
    ComposedWeighting,
    IMTLGWeighting,
    MGDAWeighting,
    NashMTLWeighting,
    PCGradWeighting,
    UncertaintyWeighting,
    UPGradWeighting,
)

ROOT = Path(__file__).parents[1]
TINY = str(ROOT / "tests" / "conf" / "tiny.yaml")
TASKS = {"a": "gaussian", "b": "gaussian", "c": "gaussian"}
D_IN, D_REP, BATCH = 6, 4, 3


def _methods(rep_grad: bool) -> dict[str, nn.Module]:
    return {
        "mgda": MGDAWeighting(epsilon=1e-7, max_iters=10_000, rep_grad=rep_grad),
        "pcgrad": PCGradWeighting(seed=3, rep_grad=rep_grad),
        "upgrad": UPGradWeighting(rep_grad=rep_grad),
        "imtl_g": IMTLGWeighting(rep_grad=rep_grad),
        "aligned_mtl": AlignedMTLWeighting(rep_grad=rep_grad),
        "cagrad": CAGradWeighting(rep_grad=rep_grad),
        "nash_mtl": NashMTLWeighting(max_norm=0.0, rep_grad=rep_grad),
        "uw+pcgrad": ComposedWeighting(
            UncertaintyWeighting(init_log_variance=0.3), PCGradWeighting(rep_grad=rep_grad)
        ),
    }


class CountBackward(torch.autograd.Function):
    """Identity whose backward counts its calls (how often gradients cross the encoder)."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        CountBackward.calls += 1
        return grad


class Toy(nn.Module):
    """A linear shared encoder ``z = W x`` and three small nonlinear heads."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.encoder = nn.Linear(D_IN, D_REP, bias=False)
        self.heads = nn.ModuleDict(
            {n: nn.Sequential(nn.Linear(D_REP, 5), nn.Tanh(), nn.Linear(5, 1)) for n in TASKS}
        )
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))

    def forward(self, x, targets):
        return self.losses(x, targets)

    def losses(self, x, targets):
        z = CountBackward.apply(self.encoder(x))
        losses = {n: ((h(z).squeeze(-1) - targets[n]) ** 2).mean() for n, h in self.heads.items()}
        return losses, z


def _inputs(orthonormal: bool, seed: int = 1, batch: int = BATCH):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, D_IN, generator=generator)
    if orthonormal:
        x = torch.linalg.qr(x.T).Q.T  # rows orthonormal: the encoder's Jacobian D has D D^T = I
    targets = {n: torch.randn(batch, generator=generator) for n in TASKS}
    return x, targets


def _step(weighting, x, targets, model: Toy | None = None):
    """Gradients of every parameter after one backward of the weighting's objective."""
    model = model or Toy()
    weighting.bind(TASKS)
    losses, z = model.losses(x, targets)
    total = weighting(losses, shared=model.encoder, heads=model.heads, representation=z)
    total.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return grads, weighting.last_weights.clone(), total.detach()


@pytest.mark.parametrize("method", list(_methods(False)))
def test_rep_level_update_equals_parameter_level_where_they_coincide(method):
    x, targets = _inputs(orthonormal=True)
    param, weights_param, total_param = _step(_methods(False)[method], x, targets)
    rep, weights_rep, total_rep = _step(_methods(True)[method], x, targets)
    assert weights_rep.tolist() == pytest.approx(weights_param.tolist(), abs=1e-4)
    assert float(total_rep) == pytest.approx(float(total_param), rel=1e-5)
    assert param["encoder.weight"].abs().max() > 1e-3  # a real update, not two zeros
    for name, grad in param.items():
        torch.testing.assert_close(rep[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_rep_level_differs_from_parameter_level_elsewhere():
    # Inputs not orthonormal: the representation-level Gramian is not the parameter-level one,
    # so MGDA's weights differ (the approximation is real, and the test above can fail).
    x, targets = _inputs(orthonormal=False)
    param, weights_param, _ = _step(MGDAWeighting(rep_grad=False), x, targets)
    rep, weights_rep, _ = _step(MGDAWeighting(rep_grad=True), x, targets)
    assert (weights_rep - weights_param).abs().max() > 0.05
    assert not torch.allclose(rep["encoder.weight"], param["encoder.weight"], atol=1e-3)
    # The heads' own gradients are the same either way: their task's, unweighted.
    for name in param:
        if name.startswith("heads."):
            torch.testing.assert_close(rep[name], param[name])


def test_rep_level_weights_are_those_of_the_representation_gramian():
    x, targets = _inputs(orthonormal=False)
    model = Toy()
    losses, z = copy.deepcopy(model).losses(x, targets)
    rows = [torch.autograd.grad(loss, z)[0].reshape(-1) for loss in losses.values()]
    jacobian = torch.stack(rows)
    expected = MGDAWeighting(epsilon=1e-7, max_iters=10_000)
    expected.bind(TASKS)
    want = expected.jacobian_weights(jacobian)
    weighting = MGDAWeighting(epsilon=1e-7, max_iters=10_000, rep_grad=True)
    grads, weights, _ = _step(weighting, x, targets, model)
    assert weights.tolist() == pytest.approx(want.tolist(), abs=1e-5)
    torch.testing.assert_close(weighting.last_gramian, jacobian @ jacobian.T)
    # The encoder gets the aggregated representation gradient, pushed through once.
    update = (want @ jacobian).view_as(z)
    torch.testing.assert_close(grads["encoder.weight"], update.T @ x, atol=1e-5, rtol=1e-4)


def test_the_encoder_is_traversed_once_instead_of_once_per_task():
    x, targets = _inputs(orthonormal=False)
    counts = {}
    for rep_grad in (False, True):
        CountBackward.calls = 0
        _step(UPGradWeighting(rep_grad=rep_grad), x, targets)
        counts[rep_grad] = CountBackward.calls
    assert counts == {False: len(TASKS), True: 1}


def test_gramian_weights_agree_with_jacobian_weights_for_a_method_that_takes_j():
    # Nash-MTL reads J itself; under DDP with rep_grad it is given a factor of J J^T.
    jacobian = torch.randn(3, 40, generator=torch.Generator().manual_seed(5))
    from_j, from_gramian = NashMTLWeighting(max_norm=0.5), NashMTLWeighting(max_norm=0.5)
    from_j.bind(TASKS)
    from_gramian.bind(TASKS)
    want = from_j.jacobian_weights(jacobian)
    got = from_gramian.gramian_weights(jacobian @ jacobian.T)
    assert got.tolist() == pytest.approx(want.tolist(), rel=1e-3, abs=1e-5)


def test_bf16_autocast_rep_level_stays_close_to_float32():
    x, targets = _inputs(orthonormal=False)
    grads32, weights32, _ = _step(UPGradWeighting(rep_grad=True), x, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grads16, weights16, total16 = _step(UPGradWeighting(rep_grad=True), x, targets)
    assert torch.isfinite(total16)
    assert weights16.tolist() == pytest.approx(weights32.tolist(), rel=0.05, abs=0.02)
    for name, grad in grads32.items():
        assert grads16[name].dtype == torch.float32  # parameters and their grads stay fp32
        torch.testing.assert_close(grads16[name], grad, rtol=0.05, atol=0.05, msg=name)


def test_rep_grad_without_a_representation_says_what_to_pass():
    x, targets = _inputs(orthonormal=False)
    model = Toy()
    weighting = PCGradWeighting(rep_grad=True)
    weighting.bind(TASKS)
    losses, _ = model.losses(x, targets)
    with pytest.raises(ValueError, match=r"rep_grad=True\) needs the shared representation"):
        weighting(losses, shared=model.encoder, heads=model.heads)


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = Toy()
    ddp = nn.parallel.DistributedDataParallel(model)
    x, targets = _inputs(orthonormal=False, batch=4)
    half = slice(2 * rank, 2 * rank + 2)
    weighting = MGDAWeighting(epsilon=1e-7, max_iters=10_000, rep_grad=True)
    weighting.bind(TASKS)
    losses, z = ddp(x[half], {n: t[half] for n, t in targets.items()})
    weighting(losses, shared=model.encoder, heads=model.heads, representation=z).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    result = {"grads": grads, "weights": weighting.last_weights, "gramian": weighting.last_gramian}
    torch.save(result, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_rep_level_update_is_that_of_the_whole_batch(tmp_path):
    # Two gloo processes, each with half of a batch of 4: their weights (from the summed
    # Gramians) and DDP-averaged gradients equal one process's on the whole batch.
    # fork: the children start with this process's imports (spawn would redo them, ~10 s).
    args = (_free_port(), str(tmp_path))
    mp.start_processes(_ddp_worker, args=args, nprocs=2, join=True, start_method="fork")
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    x, targets = _inputs(orthonormal=False, batch=4)
    whole = MGDAWeighting(epsilon=1e-7, max_iters=10_000, rep_grad=True)
    grads, weights, _ = _step(whole, x, targets)
    for result in ranks:
        assert result["weights"].tolist() == pytest.approx(weights.tolist(), abs=1e-5)
        # What gradient diagnostics read: the whole batch's Gramian, not a rank's.
        torch.testing.assert_close(result["gramian"], whole.last_gramian)
        for name, grad in grads.items():
            torch.testing.assert_close(result["grads"][name], grad, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    """One synthetic data folder for the fits of this file (written by the first)."""
    return str(tmp_path_factory.mktemp("data") / "tiny")


class Recorder(Callback):
    """The first training batch, and the gradients and weights of its step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch = batch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads = {n: p.grad.clone() for n, p in pl_module.network.named_parameters()}
        self.weights = pl_module.weighting.last_weights.clone()
        self.left = pl_module.network.take_representation()


@pytest.mark.parametrize("branch_point", ["aspp", "layer4"])
def test_the_model_aggregates_at_the_shared_encoders_output(data_root, branch_point):
    from mtlscene.cli.main import build_cli

    runs = str(Path(data_root).parent / "runs")
    cli = build_cli(
        ["--config", TINY, "--config", str(ROOT / "configs" / "weighting" / "mgda_ub.yaml")]
        + ["--data.root", data_root, "--model.branch_point", branch_point]
        + ["--trainer.default_root_dir", runs, "--trainer.logger", "false"]
        + ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"]
        + ["--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false"],
        run=False,
    )
    module = cli.model
    assert module.weighting.rep_grad and module.network.keep_representation
    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = 0.0  # ASPP's dropout: the reference forward must see the same features
    reference = copy.deepcopy(module).train()  # the weights of the first step
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(module, datamodule=cli.datamodule)
    assert recorder.left is None  # the step took the representation: nothing outlives it

    # Independently: the rep-level Jacobian at the shared encoder's output, MGDA's weights
    # on it, and that update pushed through the (copied) encoder.
    captured = []
    reference.network.encoder.register_forward_hook(lambda m, i, out: captured.append(out))
    batch = recorder.batch
    losses = reference.task_losses(reference(batch["image"]), batch)
    features = captured[0]
    rows = [
        torch.autograd.grad(losses[task], features, retain_graph=True)[0].reshape(-1)
        for task in reference.weighting.tasks
    ]
    jacobian = torch.stack(rows)
    weights = MGDAWeighting().jacobian_weights(jacobian)
    assert recorder.weights.tolist() == pytest.approx(weights.tolist(), abs=1e-5)
    encoder = dict(reference.network.encoder.named_parameters())
    update = (weights @ jacobian).view_as(features)
    expected = torch.autograd.grad(
        features, list(encoder.values()), grad_outputs=update, retain_graph=True
    )
    assert len(expected) > 0
    for name, grad in zip(encoder, expected, strict=True):
        got = recorder.grads[f"encoder.{name}"]
        torch.testing.assert_close(got, grad, atol=1e-6, rtol=1e-4, msg=name)
    # A head (with its own encoder stages at layer4) gets its own task's gradient.
    depth = dict(reference.heads["depth"].named_parameters())
    expected = torch.autograd.grad(losses["depth"], list(depth.values()))
    for name, grad in zip(depth, expected, strict=True):
        got = recorder.grads[f"heads.depth.{name}"]
        torch.testing.assert_close(got, grad, atol=1e-6, rtol=1e-4, msg=name)
