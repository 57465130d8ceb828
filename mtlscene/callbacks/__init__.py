"""Lightning callbacks: metric tables, uncertainty tracking, prediction files, GPU speed."""

from mtlscene.callbacks.channels_last import ChannelsLast
from mtlscene.callbacks.compile_model import CompileModel
from mtlscene.callbacks.exact_resume import ExactResume
from mtlscene.callbacks.metrics_table import MetricsTable
from mtlscene.callbacks.official_evaluation import OfficialEvaluation
from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.task_checkpoint import TaskCheckpoint
from mtlscene.callbacks.uncertainty_figures import UncertaintyFigures
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker
from mtlscene.callbacks.wandb_images import WandbValidationImages

__all__ = [
    "ChannelsLast",
    "CompileModel",
    "ExactResume",
    "MetricsTable",
    "OfficialEvaluation",
    "PredictionWriter",
    "TaskCheckpoint",
    "UncertaintyFigures",
    "UncertaintyTracker",
    "WandbValidationImages",
]
