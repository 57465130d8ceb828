"""Evaluation metrics of the tasks, as DDP-exact ``torchmetrics.Metric`` subclasses."""

from mtlscene.metrics.depth import DisparityMetrics
from mtlscene.metrics.instance_ap import InstanceAveragePrecision
from mtlscene.metrics.metric_depth import MetricDepthMetrics
from mtlscene.metrics.normal import SurfaceNormalMetrics
from mtlscene.metrics.offset import OffsetError
from mtlscene.metrics.panoptic_quality import CityscapesPanopticQuality
from mtlscene.metrics.semantic import SemanticSegmentationMetrics

__all__ = [
    "CityscapesPanopticQuality",
    "DisparityMetrics",
    "InstanceAveragePrecision",
    "MetricDepthMetrics",
    "OffsetError",
    "SemanticSegmentationMetrics",
    "SurfaceNormalMetrics",
]
