"""The captured training step (CaptureTrainingStep) trains exactly as the eager step."""

import itertools

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from mtlscene.callbacks import CaptureTrainingStep
from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.multitask import MultiTaskModule
from mtlscene.weighting import PCGradWeighting, RandomLossWeighting, UncertaintyWeighting

STEPS = 50
BF16_TOLERANCE = {"rtol": 1.6e-2, "atol": 1e-5}


def _module(weighting=None) -> MultiTaskModule:
    torch.manual_seed(0)
    tasks = {
        "semantic": {"hidden_channels": 8, "num_layers": 1},
        "depth": {"hidden_channels": 8, "num_layers": 1},
    }
    return MultiTaskModule(
        DeepLabEncoder("resnet18", 16, aspp_channels=8),
        tasks,
        weighting or UncertaintyWeighting(lr=0.05),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
        clustering=None,
    )


def _batches(device: str, count: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        semantic = torch.randint(0, 19, (2, 16, 32), generator=generator)
        item = {
            "image": torch.rand(2, 3, 16, 32, generator=generator),
            "semantic": semantic,
            "disparity": torch.rand(2, 16, 32, generator=generator) * 20,
            "disparity_mask": torch.rand(2, 16, 32, generator=generator) < 0.9,
        }
        batches.append({k: v.to(device) for k, v in item.items()})
    return batches


class LossRecorder(pl.Callback):
    def __init__(self):
        self.totals: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.totals.append(float(outputs["loss"]))


def _trajectory(callbacks, device="cpu", precision="32-true", weighting=None):
    module = _module(weighting)
    recorder = LossRecorder()
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[recorder, *callbacks],
    )
    stream = list(itertools.islice(itertools.cycle(_batches(device)), STEPS))
    trainer.fit(module, DataLoader(stream, batch_size=None))
    return recorder.totals, module


@pytest.mark.slow
def test_captured_step_follows_the_eager_loss_trajectory_over_50_steps():
    graphs = []

    def recording_backend(gm, example_inputs):
        # aot_eager traces forward and backward (AOTAutograd) without generating code:
        # inductor needs minutes on a 2-core CPU. Record what reached the backend.
        graphs.append(gm)
        return torch._dynamo.backends.debugging.aot_eager(gm, example_inputs)

    eager, _ = _trajectory([])
    capture = CaptureTrainingStep(backend=recording_backend)
    captured, module = _trajectory([capture])
    assert capture.captured and graphs, "the objective never reached the compiler"
    # The whole forward, both heads' losses and the weighting are in the traced graph(s).
    traced_ops = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert any("cross_entropy" in op for op in traced_ops)
    assert any("exp" in op for op in traced_ops)  # the uncertainty weighting's exp(-s)
    assert len(captured) == len(eager) == STEPS
    assert captured[-1] < captured[0]  # it trains
    # The same first step; later steps drift by float reassociation, amplified by training:
    # within bf16 tolerance (torch.testing's bfloat16 defaults) over all 50 steps.
    assert captured[0] == pytest.approx(eager[0], rel=1e-5)
    torch.testing.assert_close(torch.tensor(captured), torch.tensor(eager), **BF16_TOLERANCE)
    assert module.compiled_objective is None  # fit's teardown: evaluation runs eagerly


@pytest.mark.parametrize(
    ("weighting", "name"),
    [(RandomLossWeighting(), "RandomLossWeighting"), (PCGradWeighting(), "PCGradWeighting")],
)
def test_uncapturable_weightings_train_eagerly_with_one_warning(weighting, name):
    module = _module(weighting)
    capture = CaptureTrainingStep(backend="aot_eager")
    with pytest.warns(UserWarning, match=f"CaptureTrainingStep: {name} .*trains eagerly"):
        capture.setup(None, module, "fit")
    assert module.compiled_objective is None and not capture.captured


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graph_step_follows_eager_within_bf16_tolerance():
    eager, _ = _trajectory([], device="cuda", precision="bf16-mixed")
    captured, _ = _trajectory(
        [CaptureTrainingStep(mode="reduce-overhead")], device="cuda", precision="bf16-mixed"
    )
    torch.testing.assert_close(torch.tensor(captured), torch.tensor(eager), **BF16_TOLERANCE)
