"""Lightning callbacks: metric tables (and, in other modules, uncertainty tracking)."""

from mtlscene.callbacks.metrics_table import MetricsTable

__all__ = ["MetricsTable"]
