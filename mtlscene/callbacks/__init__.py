"""Lightning callbacks: metric tables, uncertainty tracking, prediction files."""

from mtlscene.callbacks.exact_resume import ExactResume
from mtlscene.callbacks.metrics_table import MetricsTable
from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker
from mtlscene.callbacks.wandb_images import WandbValidationImages

__all__ = [
    "ExactResume",
    "MetricsTable",
    "PredictionWriter",
    "UncertaintyTracker",
    "WandbValidationImages",
]
