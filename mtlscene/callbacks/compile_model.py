"""Optional ``torch.compile`` of the network (encoder and heads), as a callback."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch import Callback, LightningModule, Trainer


class CompileModel(Callback):
    """Compiles the module's plain-torch network in place when a stage starts.

    ``nn.Module.compile`` keeps the module and its parameter names, so checkpoints stay
    interchangeable with uncompiled runs (``torch.compile(module)`` would prefix every key
    with ``_orig_mod.``). Only the network is compiled; the loss weighting and metrics run
    eagerly. The first steps are slow while the graphs compile.

    Args:
        stages: Lightning stages to compile for ("fit", "validate", "test", "predict").
            Evaluation sees other image sizes and batch sizes, which recompile.
        mode: torch.compile mode: None, "default", "reduce-overhead", "max-autotune".
        backend: torch.compile backend ("inductor"; "eager" only checks the wiring).
        dynamic: torch.compile ``dynamic`` (None lets torch decide after a shape change).
        fullgraph: fail instead of splitting the graph at unsupported code.
    """

    def __init__(
        self,
        stages: Sequence[str] = ("fit",),
        mode: str | None = None,
        backend: str = "inductor",
        dynamic: bool | None = None,
        fullgraph: bool = False,
    ) -> None:
        unknown = sorted(set(stages) - {"fit", "validate", "test", "predict"})
        if unknown:
            raise ValueError(
                f"CompileModel stages {unknown} are not Lightning stages; use fit, validate, "
                "test or predict"
            )
        self.stages = tuple(stages)
        self.options = {"mode": mode, "backend": backend, "dynamic": dynamic}
        self.options["fullgraph"] = fullgraph

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        network = getattr(pl_module, "network", None)
        if network is None:
            raise AttributeError(
                f"CompileModel needs a module with a `network` attribute; "
                f"{type(pl_module).__name__} has none"
            )
        if stage in self.stages:
            network.compile(**self.options)
