"""Epistemic uncertainty by Monte-Carlo dropout at predict time (off by default).

N forward passes, each head that trained with dropout (its ``dropout`` option > 0, before the
decoder's final 1x1 projection) redrawing its mask at that probability, the model otherwise
in eval mode: BatchNorm keeps its running statistics and no other dropout (ASPP's) is
switched on, so the passes differ only by the decoders' dropout masks (Gal & Ghahramani
2016). Heads trained without dropout have nothing to sample: MC dropout on a model none of
whose heads trained with it is refused (`check_mc_dropout`), never run at a rate the
heads did not learn. The masks (and the sampled semantic estimator's noise) come from a
dedicated generator seeded with `MC_SEED`: the maps repeat
and the global random stream does not move.

- Regression: ``epistemic_variance`` = variance of the N predictions (summed over
  components, BxHxW); with an aleatoric head ``total_variance`` adds the mean aleatoric
  variance ``D sigma^2`` (Kendall & Gal 2017, Eq. 9).
- Classification (Boltzmann heads): ``mutual_information`` = ``H(mean p) - mean H(p_t)``
  in nats, with ``p_t`` each pass's class probabilities (the head's expected softmax under
  its logit noise, when aleatoric).

Passes are summarised as they run (running sums), so memory does not grow with N.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from mtlscene.tasks.base import TaskHead
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.sampling import MC_SEED, mc_generator
from mtlscene.uncertainty.aleatoric import aleatoric_key, mc_log_probabilities


def dropout_heads(network: nn.Module) -> dict[str, TaskHead]:
    """Task -> head of the heads that trained with dropout (``dropout > 0``)."""
    return {name: head for name, head in network.heads.items() if head.dropout > 0}


def check_mc_dropout(heads: Mapping[str, TaskHead], passes: int, source: str) -> None:
    """ValueError (one line naming ``source`` and the fix) unless ``passes`` MC-dropout passes
    can run: ``passes >= 1`` and at least one head trained with dropout."""
    if passes < 1:
        raise ValueError(f"MC dropout needs at least 1 pass, got {passes}")
    if not any(head.dropout > 0 for head in heads.values()):
        names = ", ".join(heads)
        raise ValueError(
            f"MC dropout ({passes} passes) needs heads trained with dropout, but {source} "
            f"was trained without (model.tasks {names}: dropout 0), so the passes would only "
            "add noise the heads never learned; train with model.tasks.<task>.dropout > 0 "
            "(e.g. 0.1), or predict without MC dropout"
        )


@contextmanager
def mc_dropout_mode(network: nn.Module, generator: torch.Generator) -> Iterator[None]:
    """The network in eval mode with its dropout heads' masks drawn from ``generator``."""
    heads = list(dropout_heads(network).values())
    was_training = network.training
    network.eval()
    try:
        for head in heads:
            head.mc_generator = generator
        yield
    finally:
        for head in heads:
            head.mc_generator = None
        network.train(was_training)


@torch.no_grad()
def mc_dropout_passes(
    network: nn.Module, images: Tensor, passes: int, generator: torch.Generator | None = None
) -> list[dict[str, Tensor]]:
    """The network's outputs for ``passes`` dropout masks (every pass kept: for tests and
    small batches; `epistemic_uncertainty` summarises as it goes)."""
    check_mc_dropout(network.heads, passes, "this model")
    generator = generator or mc_generator(images.device)
    with mc_dropout_mode(network, generator):
        return [network(images) for _ in range(passes)]


def _is_classification(head: TaskHead) -> bool:
    kind = str(getattr(head, "output_kind", None) or "")
    return head.likelihood == Likelihood.BOLTZMANN or kind.startswith("class_logits")


def _entropy(probabilities: Tensor) -> Tensor:
    return -torch.special.xlogy(probabilities, probabilities).sum(dim=1)


class PassStatistics:
    """Running sums of one task's MC-dropout passes and the maps they give (module doc)."""

    def __init__(self, head: TaskHead, name: str, generator: torch.Generator | None = None):
        self.head, self.name, self.generator = head, name, generator
        self.classification = _is_classification(head)
        self.count = 0
        self.first: Tensor | None = None  # sum of p (classes) or running mean (regression)
        self.second: Tensor | None = None  # sum of H(p_t) or sum of squared deviations
        self.aleatoric = None  # sum of sigma^2 (aleatoric regressions)

    def _log_probabilities(self, outputs: Mapping[str, Tensor]) -> Tensor:
        logits = outputs[self.name]
        if not self.head.aleatoric:
            return torch.log_softmax(logits.float(), dim=1)
        log_scale = outputs[aleatoric_key(self.name)]
        expected = getattr(self.head, "aleatoric_log_probabilities", None)
        if expected is not None:
            return expected(logits, log_scale, self.generator)
        samples = getattr(self.head, "aleatoric_samples", 10)
        return mc_log_probabilities(logits, log_scale, samples, self.generator)

    def add(self, outputs: Mapping[str, Tensor]) -> None:
        """Take one pass's network outputs."""
        self.count += 1
        if self.classification:
            probabilities = self._log_probabilities(outputs).exp()
            entropy = _entropy(probabilities)
            self.first = probabilities if self.first is None else self.first + probabilities
            self.second = entropy if self.second is None else self.second + entropy
            return
        prediction = outputs[self.name].float()
        if self.first is None:  # Welford's running mean and squared deviations
            self.first, self.second = prediction.clone(), torch.zeros_like(prediction)
        else:
            delta = prediction - self.first
            self.first = self.first + delta / self.count
            self.second = self.second + delta * (prediction - self.first)
        if self.head.aleatoric:
            variance = self.head.sigma(outputs[aleatoric_key(self.name)]).square()
            self.aleatoric = variance if self.aleatoric is None else self.aleatoric + variance

    def result(self) -> dict[str, Tensor]:
        """The task's maps (BxHxW): ``mutual_information``, or ``epistemic_variance`` and
        (aleatoric) ``total_variance``."""
        if self.count == 0:
            raise ValueError(f"no MC-dropout pass of task {self.name!r} was added")
        if self.classification:
            mean = self.first / self.count
            information = _entropy(mean) - self.second / self.count
            return {"mutual_information": information.clamp_min(0)}
        epistemic = (self.second / self.count).sum(dim=1)
        result = {"epistemic_variance": epistemic}
        if self.aleatoric is not None:
            components = self.first.shape[1]
            result["total_variance"] = epistemic + components * self.aleatoric / self.count
        return result


def summarize_passes(
    head: TaskHead,
    name: str,
    passes: Iterable[Mapping[str, Tensor]],
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Epistemic (and total) uncertainty of one task from MC-dropout passes (module doc)."""
    statistics = PassStatistics(head, name, generator)
    for outputs in passes:
        statistics.add(outputs)
    return statistics.result()


@torch.no_grad()
def epistemic_uncertainty(
    network: nn.Module, images: Tensor, passes: int, seed: int = MC_SEED
) -> dict[str, dict[str, Tensor]]:
    """Task -> its epistemic maps (module doc) from ``passes`` MC-dropout passes, for every
    head that trained with dropout; ValueError when none did (`check_mc_dropout`)."""
    check_mc_dropout(network.heads, passes, "this model")
    generator = mc_generator(images.device, seed)
    statistics = {
        name: PassStatistics(head, name, generator) for name, head in dropout_heads(network).items()
    }
    with mc_dropout_mode(network, generator):
        for _ in range(passes):
            outputs = network(images)
            for task in statistics.values():
                task.add(outputs)
    return {name: task.result() for name, task in statistics.items()}


__all__ = [
    "PassStatistics",
    "check_mc_dropout",
    "dropout_heads",
    "epistemic_uncertainty",
    "mc_dropout_mode",
    "mc_dropout_passes",
    "summarize_passes",
]
