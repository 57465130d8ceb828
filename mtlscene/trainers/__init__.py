"""Lightning modules composing the plain-torch parts."""

from mtlscene.trainers.multitask import MultiTaskModule

__all__ = ["MultiTaskModule"]
