"""Lightning callbacks: metric tables and uncertainty tracking."""

from mtlscene.callbacks.metrics_table import MetricsTable
from mtlscene.callbacks.uncertainty_tracker import UncertaintyTracker

__all__ = ["MetricsTable", "UncertaintyTracker"]
