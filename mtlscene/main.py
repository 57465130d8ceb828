"""Command-line entry point: ``mtlscene fit|validate|test|predict --config ...``."""

from __future__ import annotations

import os

# Keep imports network-free: albumentations would otherwise check PyPI for updates.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import yaml  # noqa: E402
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback  # noqa: E402

from mtlscene.data.datamodule import CityscapesDataModule  # noqa: E402
from mtlscene.trainers.multitask import MultiTaskModule  # noqa: E402


class SaveConfigToLoggers(SaveConfigCallback):
    """Saves ``config.yaml`` in the run directory and attaches the resolved config to every
    logger (the W&B run's config, TensorBoard/CSV hparams)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class MTLSceneCLI(LightningCLI):
    """LightningCLI whose subcommands read checkpoints with ``weights_only=True`` by default
    (tensors and plain data only; pass ``--weights_only false`` for trusted legacy files), and
    whose ``predict`` streams: results go to the writer callbacks batch by batch and are not
    kept (``return_predictions=False`` unless ``--return_predictions true`` is given)."""

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in kwargs and kwargs["weights_only"] is None:
            kwargs["weights_only"] = True
        if subcommand == "predict" and kwargs.get("return_predictions") is None:
            # Lightning would otherwise keep every batch and prediction until the end.
            kwargs["return_predictions"] = False
        return kwargs


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Build (and by default run) the LightningCLI; ``args=None`` reads ``sys.argv``."""
    return MTLSceneCLI(
        MultiTaskModule,
        CityscapesDataModule,
        save_config_callback=SaveConfigToLoggers,
        save_config_kwargs={"overwrite": True},
        # The module takes its optimizer and scheduler as injected arguments.
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


class _ParseOnlyCLI(MTLSceneCLI):
    def instantiate_classes(self) -> None:
        """Resolve the config without building the model, data or trainer."""


def parse_config(args: list[str]):
    """The fully resolved config (a jsonargparse Namespace) of ``args`` without a
    subcommand, e.g. ``["--config", "a.yaml", "--config", "b.yaml"]``; nothing is built."""
    return _ParseOnlyCLI(
        MultiTaskModule,
        CityscapesDataModule,
        save_config_callback=None,
        auto_configure_optimizers=False,
        args=args,
        run=False,
    ).config


def main(args: list[str] | None = None) -> None:
    """Console entry point. Several ``--config`` files compose in order (later ones win)."""
    build_cli(args)
