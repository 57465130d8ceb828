"""Experiment loggers."""

from mtlscene.loggers.wandb import OfflineFirstWandbLogger, wandb_api_key_available

__all__ = ["OfflineFirstWandbLogger", "wandb_api_key_available"]
