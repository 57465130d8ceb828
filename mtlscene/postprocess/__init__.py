"""Post-processing of network outputs into task results (instance masks)."""

from mtlscene.postprocess.clustering import CentroidVoteClustering

__all__ = ["CentroidVoteClustering"]
