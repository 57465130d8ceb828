"""The training step's forward, task losses and loss weighting compiled as one graph."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn


def capture_refusal(weighting: torch.nn.Module) -> str | None:
    """Why ``weighting`` cannot run inside a captured step, or None when it can."""
    name = type(weighting).__name__
    if getattr(weighting, "requires_gradients", False):
        return f"{name} weighs per-task gradients (one backward per task inside the step)"
    if not getattr(weighting, "capturable", True):
        return f"{name} reads host state on every step"
    return None


def use_fused_step(optimizer: torch.optim.Optimizer) -> bool:
    """Switch ``optimizer`` to its fused step when it has one and every parameter is on a
    GPU (what its constructor would check for ``fused=True``); returns whether it did."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if "fused" not in optimizer.defaults or not all(p.is_cuda for p in params):
        return False
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, False
    return True


class CaptureTrainingStep(Callback):
    """Runs ``MultiTaskModule.training_objective`` as one ``torch.compile``-d graph.

    Forward pass, task losses and the loss weighting are traced into one graph; AOTAutograd
    derives its backward as a second compiled graph. With ``mode="reduce-overhead"`` on a
    GPU, both are replayed as CUDA graphs: one launch instead of about a thousand kernels
    each, which is what bounds the paper's 128x256 step (the host, not the GPU).

    Why ``torch.compile`` rather than hand-made ``torch.cuda.graphs``: it keeps Lightning's
    automatic optimization (gradient accumulation, clipping, AMP scaling, schedulers), it
    re-records by itself when a shape changes (the last, smaller batch of an epoch), and the
    same code runs on the CPU, where the suite checks it. The optimizer step stays outside the
    graph, switched on a GPU to the optimizer's fused implementation (one multi-tensor
    kernel per group; Adam, AdamW and SGD have one), keeping the config's optimizer and
    settings.

    Weightings that cannot be captured (gradient methods, host-side random draws) train eagerly,
    with one warning naming the method.

    Args:
        mode: torch.compile mode ("reduce-overhead": CUDA graphs on a GPU).
        backend: torch.compile backend ("inductor"; "aot_eager" traces forward and backward
            without generating code, which the CPU tests use).
        fullgraph: fail instead of splitting the graph at unsupported code.
        dynamic: torch.compile ``dynamic`` (False: one graph per batch shape).
        fused_optimizer: on a GPU, run the optimizer's fused step where it has one.
    """

    def __init__(
        self,
        mode: str | None = "reduce-overhead",
        backend: str = "inductor",
        fullgraph: bool = False,
        dynamic: bool | None = False,
        fused_optimizer: bool = True,
    ) -> None:
        self.options = {"mode": mode, "backend": backend, "fullgraph": fullgraph}
        self.options["dynamic"] = dynamic
        if backend != "inductor":  # modes are inductor's options
            self.options.pop("mode")
        self.fused_optimizer = fused_optimizer
        self.captured = False
        self.fused: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not hasattr(pl_module, "training_objective"):
            raise AttributeError(
                f"CaptureTrainingStep needs a module with `training_objective`; "
                f"{type(pl_module).__name__} has none"
            )
        refusal = capture_refusal(pl_module.weighting)
        if refusal is not None:
            rank_zero_warn(f"CaptureTrainingStep: {refusal}; this run trains eagerly")
            return
        pl_module.compiled_objective = torch.compile(pl_module.training_objective, **self.options)
        self.captured = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not (self.fused_optimizer and pl_module.device.type == "cuda"):
            return
        for optimizer in trainer.optimizers:
            if use_fused_step(optimizer):
                self.fused.append(type(optimizer).__name__)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            pl_module.compiled_objective = None  # validate/test/predict run eagerly
