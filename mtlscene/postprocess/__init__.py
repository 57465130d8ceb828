"""Post-processing of network outputs into task results (instance masks, panoptic maps)."""

from mtlscene.postprocess.base import PostProcessor
from mtlscene.postprocess.clustering import CentroidVoteClustering
from mtlscene.postprocess.panoptic import PanopticFusion

__all__ = ["CentroidVoteClustering", "PanopticFusion", "PostProcessor"]
