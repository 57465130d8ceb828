"""Lightning callbacks: metric tables, uncertainty tracking, prediction files, GPU speed,
and the task-relationship diagnostics (gradient statistics, task affinity, training cost)."""

from mtlscene.callbacks.capture_step import CaptureTrainingStep
from mtlscene.callbacks.channels_last import ChannelsLast
from mtlscene.callbacks.compile_model import CompileModel
from mtlscene.callbacks.exact_resume import ExactResume
from mtlscene.callbacks.gradient_diagnostics import GradientDiagnostics
from mtlscene.callbacks.metrics_table import MetricsTable
from mtlscene.callbacks.official_evaluation import OfficialEvaluation
from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.task_affinity import TaskAffinity
from mtlscene.callbacks.task_checkpoint import TaskCheckpoint
from mtlscene.callbacks.training_cost import TrainingCost
from mtlscene.callbacks.uncertainty_figures import UncertaintyFigures
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker
from mtlscene.callbacks.wandb_images import WandbValidationImages

__all__ = [
    "CaptureTrainingStep",
    "ChannelsLast",
    "CompileModel",
    "ExactResume",
    "GradientDiagnostics",
    "MetricsTable",
    "OfficialEvaluation",
    "PredictionWriter",
    "TaskAffinity",
    "TaskCheckpoint",
    "TrainingCost",
    "UncertaintyFigures",
    "UncertaintyTracker",
    "WandbValidationImages",
]
