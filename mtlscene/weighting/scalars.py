"""The per-task scalars every weighting reports, under the keys the loggers and plots use."""

from __future__ import annotations

from torch import Tensor

from mtlscene.weighting.base import LossWeighting


def weighting_scalars(weighting: LossWeighting) -> dict[str, Tensor]:
    """``weight/<task>`` for every method, plus ``uncertainty/{s,sigma,weight}/<task>``.

    The ``uncertainty/`` keys are the ones the uncertainty tracker and the first runs used;
    s and sigma appear only for methods that have them. Values are detached device tensors,
    so building this dict never waits for the device.
    """
    weights = weighting.weights()
    scalars = {f"weight/{task}": value for task, value in weights.items()}
    for kind, values in (
        ("s", weighting.log_variances()),
        ("sigma", weighting.sigmas()),
        ("weight", weights),
    ):
        scalars.update({f"uncertainty/{kind}/{task}": value for task, value in values.items()})
    return scalars
