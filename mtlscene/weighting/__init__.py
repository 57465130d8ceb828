"""Multi-task loss weighting: learned uncertainty (the paper) and fixed baselines."""

from mtlscene.weighting.base import LossWeighting
from mtlscene.weighting.fixed import FixedWeighting
from mtlscene.weighting.uncertainty import UncertaintyWeighting

__all__ = ["FixedWeighting", "LossWeighting", "UncertaintyWeighting"]
