"""Multi-task loss weighting: the paper's learned uncertainty and the methods that followed.

``WEIGHTING_METHODS`` maps each method's short name (as used by presets and experiments) to
its class; every class is also constructible by ``class_path`` in a config.
``ComposedWeighting`` (a loss weighting followed by a gradient method) takes two methods as
arguments, so it has presets (``configs/weighting/uncertainty_pcgrad.yaml``...) but no
short name of its own.
"""

from mtlscene.weighting.aggregators import (
    AlignedMTLWeighting,
    CAGradWeighting,
    IMTLGWeighting,
    MGDAWeighting,
    NashMTLWeighting,
    PCGradWeighting,
    UPGradWeighting,
)
from mtlscene.weighting.base import LossWeighting
from mtlscene.weighting.composed import ComposedWeighting
from mtlscene.weighting.dwa import DWAWeighting
from mtlscene.weighting.equal import EqualWeighting
from mtlscene.weighting.famo import FAMOWeighting
from mtlscene.weighting.fixed import FixedWeighting
from mtlscene.weighting.gls import GeometricLossWeighting
from mtlscene.weighting.gradnorm import GradNormWeighting
from mtlscene.weighting.imtl_l import IMTLLWeighting
from mtlscene.weighting.jacobian import JacobianWeighting
from mtlscene.weighting.rlw import RandomLossWeighting
from mtlscene.weighting.settled import SettledUncertaintyWeighting
from mtlscene.weighting.uncertainty import UncertaintyWeighting
from mtlscene.weighting.uw_so import SoftOptimalUncertaintyWeighting

WEIGHTING_METHODS: dict[str, type[LossWeighting]] = {
    "uncertainty": UncertaintyWeighting,
    "settled_uncertainty": SettledUncertaintyWeighting,
    "uw_so": SoftOptimalUncertaintyWeighting,
    "fixed": FixedWeighting,
    "equal": EqualWeighting,
    "dwa": DWAWeighting,
    "rlw": RandomLossWeighting,
    "famo": FAMOWeighting,
    "gls": GeometricLossWeighting,
    "imtl_l": IMTLLWeighting,
    "gradnorm": GradNormWeighting,
    "mgda": MGDAWeighting,
    "pcgrad": PCGradWeighting,
    "cagrad": CAGradWeighting,
    "nash_mtl": NashMTLWeighting,
    "imtl_g": IMTLGWeighting,
    "aligned_mtl": AlignedMTLWeighting,
    "upgrad": UPGradWeighting,
}

__all__ = [
    "WEIGHTING_METHODS",
    "AlignedMTLWeighting",
    "CAGradWeighting",
    "ComposedWeighting",
    "DWAWeighting",
    "EqualWeighting",
    "FAMOWeighting",
    "FixedWeighting",
    "GeometricLossWeighting",
    "GradNormWeighting",
    "IMTLGWeighting",
    "IMTLLWeighting",
    "JacobianWeighting",
    "LossWeighting",
    "MGDAWeighting",
    "NashMTLWeighting",
    "PCGradWeighting",
    "RandomLossWeighting",
    "SettledUncertaintyWeighting",
    "SoftOptimalUncertaintyWeighting",
    "UPGradWeighting",
    "UncertaintyWeighting",
]
