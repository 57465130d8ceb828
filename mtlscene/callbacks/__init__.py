"""Lightning callbacks: metric tables, uncertainty tracking, prediction files."""

from mtlscene.callbacks.metrics_table import MetricsTable
from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.task_checkpoint import TaskCheckpoint
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker
from mtlscene.callbacks.wandb_images import WandbValidationImages

__all__ = [
    "MetricsTable",
    "PredictionWriter",
    "TaskCheckpoint",
    "UncertaintyTracker",
    "WandbValidationImages",
]
