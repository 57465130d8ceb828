"""Epistemic uncertainty by Monte-Carlo dropout at predict time (off by default).

N forward passes with dropout before each decoder's final 1x1 projection
(:class:`~mtlscene.tasks.base.TaskHead`'s ``dropout``), the model otherwise in eval mode:
BatchNorm keeps its running statistics and no other dropout (ASPP's) is switched on, so
the passes differ only by the decoders' dropout masks (Gal & Ghahramani 2016).

- Regression: ``epistemic_variance`` = variance of the N predictions (summed over
  components, BxHxW); with an aleatoric head ``total_variance`` adds the mean aleatoric
  variance ``D sigma^2`` (Kendall & Gal 2017, Eq. 9).
- Classification (Boltzmann heads): ``mutual_information`` = ``H(mean p) - mean H(p_t)``
  in nats, with ``p_t`` each pass's (Monte-Carlo, when aleatoric) class probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlscene.tasks.aleatoric import aleatoric_key, mc_log_probabilities
from mtlscene.tasks.base import TaskHead
from mtlscene.tasks.likelihood import Likelihood


@torch.no_grad()
def mc_dropout_passes(
    network: nn.Module, images: Tensor, passes: int, probability: float
) -> list[dict[str, Tensor]]:
    """The network's outputs for ``passes`` dropout masks, every head's dropout at
    ``probability`` and the network in eval mode."""
    if passes < 1 or not 0.0 < probability < 1.0:
        raise ValueError(
            f"MC dropout needs passes >= 1 and 0 < dropout < 1, got {passes} and {probability}"
        )
    heads = [m for m in network.modules() if isinstance(m, TaskHead)]
    was_training = network.training
    network.eval()
    try:
        for head in heads:
            head.mc_dropout = probability
        return [network(images) for _ in range(passes)]
    finally:
        for head in heads:
            head.mc_dropout = None
        network.train(was_training)


def _entropy(log_probs: Tensor) -> Tensor:
    return -(log_probs.exp() * log_probs).sum(dim=1)


def summarize_passes(
    head: TaskHead, name: str, passes: list[Mapping[str, Tensor]]
) -> dict[str, Tensor]:
    """Epistemic (and total) uncertainty of one task from MC-dropout passes (module doc)."""
    key = aleatoric_key(name)
    kind = str(getattr(head, "output_kind", None) or "")
    if head.likelihood == Likelihood.BOLTZMANN or kind.startswith("class_logits"):
        log_probs = []
        for out in passes:
            if head.aleatoric:
                samples = getattr(head, "aleatoric_samples", 10)
                log_probs.append(mc_log_probabilities(out[name], out[key], samples))
            else:
                log_probs.append(torch.log_softmax(out[name].float(), dim=1))
        stacked = torch.stack(log_probs)
        mean_log = torch.logsumexp(stacked, dim=0) - torch.log(torch.tensor(float(len(passes))))
        information = _entropy(mean_log) - torch.stack([_entropy(lp) for lp in log_probs]).mean(0)
        return {"mutual_information": information.clamp_min(0)}
    predictions = torch.stack([out[name].float() for out in passes])
    epistemic = predictions.var(dim=0, unbiased=False).sum(dim=1)
    result = {"epistemic_variance": epistemic}
    if head.aleatoric:
        components = predictions.shape[2]
        aleatoric = torch.stack([head.sigma(out[key]).square() for out in passes]).mean(0)
        result["total_variance"] = epistemic + components * aleatoric
    return result
