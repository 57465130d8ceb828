"""Per-pixel (heteroscedastic) aleatoric uncertainty: bounded log-scales and their NLLs.

A head switched to ``aleatoric: true`` predicts, beside its prediction channels, one more
channel ``s`` per pixel (Kendall & Gal, NeurIPS 2017). The network hands it out under
`aleatoric_key` (``"<task>/aleatoric"``), so everything that reads ``outputs[task]``
(metrics, post-processing, writers) sees exactly the prediction channels it saw before.

Per-pixel negative log-likelihoods, with residual components ``r_c`` (c = 1..D, D the
components that share one ``s``, e.g. D = 2 for the instance head's (dy, dx) vector) and
additive constants dropped:

- ``gaussian``: ``0.5 exp(-s) sum_c r_c^2 + 0.5 D s``, ``s = log sigma^2``;
  minimised at ``s* = log(sum_c r_c^2 / D)`` (``log r^2`` for one component).
- ``laplace``: ``exp(-s) sum_c |r_c| + D s``, ``s = log b`` (b the Laplace scale);
  minimised at ``s* = log(sum_c |r_c| / D)`` (``log |r|`` for one component).

``sigma`` is always the standard deviation of one component in the target's unit:
``exp(s / 2)`` (gaussian) or ``sqrt(2) exp(s)`` (laplace), so the ``±k sigma`` intervals
have the nominal coverage `nominal_coverage` gives (68.3 / 95.4 % gaussian,
75.7 / 94.1 % laplace).

The training loss of a regression head has the gradient of the mean NLL and the value of
the mean error ``sum_c |r_c|`` (`nll_gradient_error_value`): a continuous NLL has no
natural zero (its constants are dropped, and it falls without bound as sigma -> 0), so no
loss weighting may read its value; the logged ``nll`` metric is the plain mean NLL.

Everything here runs in float32 with autocast off: ``exp(-s)`` of a half-precision ``s``
overflows long before the bound.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import Tensor, nn

LOG_SCALE_BOUND = 10.0
"""``|s| < 10``: sigma between ~e^-5 and e^5 (gaussian); exp(-s) never overflows float32."""

DEFAULT_SEMANTIC_SAMPLES = 10
"""T, the Monte-Carlo samples of the semantic head's noisy logits: the calibration metrics' and
the ``sampled`` loss estimator's (the default estimator, mean_field, draws none). The sampled
loss draws T x classes noise values per pixel: on the quick start's CPU network T = 10 makes
the training step ~2.6x slower (``benchmarks/bench_aleatoric.py``); T = 1 gives sigma no
signal (Jensen: one noisy sample's expected cross-entropy is least at sigma = 0)."""


class PixelLikelihood(str, Enum):
    """The per-pixel likelihood of a regression head's residual."""

    GAUSSIAN = "gaussian"
    LAPLACE = "laplace"

    @classmethod
    def parse(cls, value: str | PixelLikelihood, option: str) -> PixelLikelihood:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(
                f"{option}: unknown likelihood {value!r}; choose one of: {names}"
            ) from None


def aleatoric_key(task: str) -> str:
    """The key of a task's bounded per-pixel log-scale ``s`` (Bx1xHxW) in the outputs."""
    return f"{task}/aleatoric"


def bound_log_scale(raw: Tensor, bound: float | None = None) -> Tensor:
    """Soft bound to ``(-bound, bound)``: ``bound * tanh(raw / bound)``, in float32.

    Near 0 it is the identity; unlike a clamp it keeps a gradient everywhere, so a pixel
    that overshoots is pulled back. ``bound`` None reads `LOG_SCALE_BOUND` at call time.
    """
    bound = LOG_SCALE_BOUND if bound is None else bound
    with torch.autocast(device_type=raw.device.type, enabled=False):
        return bound * torch.tanh(raw.float() / bound)


def pixel_nll(residual: Tensor, s: Tensor, likelihood: PixelLikelihood) -> Tensor:
    """Per-pixel NLL (constants dropped) of residual components under scale ``s``.

    Args:
        residual: BxDxHxW residual components (signed or absolute).
        s: Bx1xHxW or BxHxW bounded log-scale.
        likelihood: gaussian or laplace (module docstring for the formulas).

    Returns:
        BxHxW float32.
    """
    with torch.autocast(device_type=residual.device.type, enabled=False):
        s = s.float().reshape(residual.shape[0], *residual.shape[2:])
        components = residual.shape[1]
        if likelihood == PixelLikelihood.GAUSSIAN:
            return 0.5 * torch.exp(-s) * residual.float().square().sum(1) + 0.5 * components * s
        return torch.exp(-s) * residual.float().abs().sum(1) + components * s


def nll_gradient_error_value(nll: Tensor, error: Tensor) -> Tensor:
    """A loss with the gradient of ``nll`` and the value of ``error`` (both scalars).

    What an aleatoric regression head hands to the loss weighting. The gradient trains the
    prediction and ``s`` on the likelihood. The value is the head's mean error, which is
    >= 0 with a true zero and carries no constant: loss weightings that read loss values
    (ratios, logarithms, ``1 / L``) see the head's error, never the NLL's arbitrary origin
    (the dropped constants, or a shift by the bound on ``s``). A non-finite NLL still shows
    (``inf - inf`` is NaN), so the finite-loss check catches it.
    """
    return error.detach() + (nll - nll.detach())


def log_scale_for_mean_error(
    mean_error: Tensor, components: int, likelihood: PixelLikelihood
) -> Tensor:
    """The ``s`` under which the expected per-pixel error ``sum_c |r_c|`` is ``mean_error``.

    One scale for every pixel: the task-level predictive distribution of a head without
    per-pixel sigma. Per component ``E|r_c| = mean_error / D``; laplace ``b = E|r|``
    (``s = log b``), gaussian ``sigma = E|r| sqrt(pi / 2)`` (``s = log sigma^2``).
    """
    per_component = torch.as_tensor(mean_error, dtype=torch.float32) / components
    if likelihood == PixelLikelihood.GAUSSIAN:
        return 2.0 * torch.log(per_component * math.sqrt(math.pi / 2.0))
    return torch.log(per_component)


def optimal_log_scale(residual: Tensor, likelihood: PixelLikelihood) -> Tensor:
    """``s*`` minimising `pixel_nll` for a fixed residual (BxDxHxW -> BxHxW)."""
    components = residual.shape[1]
    if likelihood == PixelLikelihood.GAUSSIAN:
        return torch.log(residual.float().square().sum(1) / components)
    return torch.log(residual.float().abs().sum(1) / components)


def sigma_from_log_scale(s: Tensor, likelihood: PixelLikelihood) -> Tensor:
    """The standard deviation of one residual component: gaussian ``exp(s/2)``, laplace
    ``sqrt(2) exp(s)``."""
    s = s.float()
    if likelihood == PixelLikelihood.GAUSSIAN:
        return torch.exp(0.5 * s)
    return math.sqrt(2.0) * torch.exp(s)


def nominal_coverage(k: float, likelihood: PixelLikelihood) -> float:
    """P(|r| <= k sigma) for one component: gaussian ``erf(k / sqrt 2)``, laplace
    ``1 - exp(-k sqrt 2)`` (|r| is exponential with scale ``b = sigma / sqrt 2``)."""
    if likelihood == PixelLikelihood.GAUSSIAN:
        return math.erf(k / math.sqrt(2.0))
    return 1.0 - math.exp(-k * math.sqrt(2.0))


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of BxHxW values over the mask; 0 (with a defined gradient) when the mask is empty."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def sample_noisy_logits(
    logits: Tensor, s: Tensor, samples: int, generator: torch.Generator | None = None
) -> Tensor:
    """T noisy copies ``logits + sigma * eps`` with ``sigma = exp(s / 2)``, eps ~ N(0, 1).

    One sigma per pixel, shared by every class (Kendall & Gal's per-pixel sigma): logits
    BxCxHxW, s Bx1xHxW -> TxBxCxHxW, float32.
    """
    logits = logits.float()
    sigma = torch.exp(0.5 * s.float())
    noise = torch.randn(
        (samples, *logits.shape), device=logits.device, dtype=logits.dtype, generator=generator
    )
    return logits.unsqueeze(0) + sigma.unsqueeze(0) * noise


def mc_log_probabilities(
    logits: Tensor, s: Tensor, samples: int, generator: torch.Generator | None = None
) -> Tensor:
    """``log (1/T sum_t softmax(logits + sigma eps_t))``, BxCxHxW float32."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        noisy = sample_noisy_logits(logits, s, samples, generator)
        log_probs = nn.functional.log_softmax(noisy, dim=2)
        return torch.logsumexp(log_probs, dim=0) - math.log(samples)


def mc_cross_entropy(
    logits: Tensor, s: Tensor, target: Tensor, samples: int, ignore_index: int
) -> Tensor:
    """Kendall & Gal's Monte-Carlo classification loss, mean over labelled pixels.

    Per pixel ``-log (1/T sum_t softmax(logits + sigma eps_t)[y])``: the noise lowers the
    loss of a wrong pixel when sigma grows, and costs a correct one, so sigma learns where
    the labels are unreliable. An all-ignored batch gives 0.
    """
    log_probs = mc_log_probabilities(logits, s, samples)
    labelled = target != ignore_index
    safe_target = torch.where(labelled, target, torch.zeros_like(target))
    nll = -log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    return masked_mean(nll, labelled)
