"""The semantic head's expected softmax under per-pixel Gaussian logit noise.

An aleatoric semantic head predicts, per pixel, ``s = log sigma^2`` of Gaussian noise on
every logit and trains on ``-log E_eps[softmax(z + sigma eps)][y]`` (Kendall & Gal 2017,
Eq. 12). The expectation has no closed form; two estimators (the head's
``aleatoric_estimator``):

- ``mean_field`` (the default): the probit / mean-field approximation
  ``E[softmax(z + sigma eps)] ~ softmax(z / sqrt(1 + pi sigma^2 / 8))`` (MacKay 1992; the
  multi-class form of Lu et al. 2020 and of SNGP, Liu et al. 2020). No sampling: one
  division per logit, deterministic, no gradient noise. Noise still lowers a wrong pixel's
  loss and raises a right one's (the logits are flattened toward uniform as sigma grows),
  so sigma learns the same thing.
- ``sampled``: Kendall & Gal's Monte-Carlo estimate ``log (1/T sum_t softmax(z + sigma
  eps_t))`` with T = ``aleatoric_samples`` draws of T x classes noise values per pixel.

Cost and accuracy, measured with ``benchmarks/bench_aleatoric.py`` (docs/tasks.md, "Cost
of the switch"): the mean-field loss adds +0.2 % to the quick start's CPU step, the sampled
T = 10 loss +158 %; on random logits the mean-field loss is 3.0 % below a T = 20,000
reference, the sampled T = 10 loss 9.2 % above it (the log of a mean of 10 samples is
biased upward).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mtlscene.uncertainty.aleatoric import masked_mean, mc_log_probabilities

ESTIMATORS = ("mean_field", "sampled")
DEFAULT_ESTIMATOR = "mean_field"
MEAN_FIELD_FACTOR = math.pi / 8.0
"""``lambda`` of ``softmax(z / sqrt(1 + lambda sigma^2))``: the probit approximation's pi/8."""


def check_estimator(value: str, option: str) -> str:
    """``value`` when it names an estimator, else a ValueError naming ``option``."""
    if value not in ESTIMATORS:
        raise ValueError(f"{option}: unknown estimator {value!r}; choose one of {list(ESTIMATORS)}")
    return value


def mean_field_log_probabilities(logits: Tensor, s: Tensor) -> Tensor:
    """``log softmax(z / sqrt(1 + pi sigma^2 / 8))`` with ``sigma^2 = exp(s)``: logits
    BxCxHxW, s Bx1xHxW -> BxCxHxW float32 (autocast off)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        scale = torch.rsqrt(1.0 + MEAN_FIELD_FACTOR * torch.exp(s.float()))
        return nn.functional.log_softmax(logits.float() * scale, dim=1)


def expected_log_probabilities(
    logits: Tensor,
    s: Tensor,
    estimator: str = DEFAULT_ESTIMATOR,
    samples: int = 10,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``log E[softmax(logits + sigma eps)]`` by ``estimator`` (module doc), BxCxHxW.

    ``samples`` and ``generator`` are read by ``sampled`` only (None: the global stream).
    """
    if estimator == "mean_field":
        return mean_field_log_probabilities(logits, s)
    return mc_log_probabilities(logits, s, samples, generator)


def noisy_softmax_cross_entropy(
    logits: Tensor,
    s: Tensor,
    target: Tensor,
    ignore_index: int,
    estimator: str = DEFAULT_ESTIMATOR,
    samples: int = 10,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``-log E[softmax(logits + sigma eps)][y]``, mean over labelled pixels (0 when none).

    ``sampled`` with the same ``samples`` and noise gives exactly
    `mtlscene.uncertainty.aleatoric.mc_cross_entropy`.
    """
    log_probs = expected_log_probabilities(logits, s, estimator, samples, generator)
    labelled = target != ignore_index
    safe_target = torch.where(labelled, target, torch.zeros_like(target))
    nll = -log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    return masked_mean(nll, labelled)


__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "MEAN_FIELD_FACTOR",
    "check_estimator",
    "expected_log_probabilities",
    "mean_field_log_probabilities",
    "noisy_softmax_cross_entropy",
]
