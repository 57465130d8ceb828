"""Calibration of per-pixel uncertainty: NLL, sparsification/AUSE, coverage and ECE.

Every state is a sum (``dist_reduce_fx="sum"``), so the values are the same on one process
and under DDP, and memory does not grow with the split.

**AUSE** (Ilg et al., ECCV 2018). Remove the fraction ``f`` of pixels with the largest
predicted uncertainty and take the mean error of the rest: the sparsification curve. The
oracle removes them in order of their true error. ``AUSE`` is the area between the two
curves over ``f`` in [0, 1] (in the error's unit), computed over the pixels of the whole
split and integrated exactly (`sparsification_area`: between two bin edges the curve
is ``C / (N (1 - f)) + mu``, whose integral is closed-form), not on a grid of fractions.
``ause_random`` is the same area for a random order (a flat curve at the mean error), the
reference a useful uncertainty beats. A constant uncertainty (one task-level sigma) ranks
no pixel above another: its curve is the random one, so its AUSE is ``ause_random``.

To stay DDP-exact with bounded memory, pixels are sorted through fixed histograms instead of
a global sort: 2000 bins of ``s`` over its bounded range [-10, 10] (width 0.01, i.e. 0.5 % in
sigma) and 2000 bins of ``log10(error)`` over [-6, 4] (width 0.005 decade, 1.2 %; errors
outside are clamped into the end bins), each bin with its pixel count and error sum. A
curve removes whole bins from the top and a share of the boundary bin at that bin's mean
error. The only approximation against an exact sort is therefore the order *within* a bin
(pixels whose s, or whose error, agree to the bin width), which a random tie-break would
also leave open; with pixels in distinct bins the result equals the exact sort (tested).
The curves at ``fractions`` points (default 100) are for the figure only.

**Coverage**: the share of residual components within ``±k sigma`` (k = 1, 2), against the
likelihood's nominal share (`mtlscene.uncertainty.aleatoric.nominal_coverage`).

**ECE**: the multiclass expected calibration error with torchmetrics' binning (15 equal
bins of the top-1 confidence, ``torch.bucketize(..., right=True) - 1``, an extra bin for
confidence exactly 1, L1 norm), kept as per-bin sums instead of torchmetrics' list of every
pixel's confidence; equal to ``torchmetrics.classification.MulticlassCalibrationError``
(tested). The per-bin accuracy and confidence give the reliability diagram.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from mtlscene.uncertainty.aleatoric import (
    LOG_SCALE_BOUND,
    PixelLikelihood,
    mc_log_probabilities,
    nominal_coverage,
    pixel_nll,
    sigma_from_log_scale,
)

SCALE_BINS = 2000
ERROR_BINS = 2000
LOG10_ERROR_RANGE = (-6.0, 4.0)
DEFAULT_FRACTIONS = 100


def sparsification_curve(counts: Tensor, error_sums: Tensor, fractions: Tensor) -> Tensor:
    """Mean error of the pixels left after removing each fraction, highest bins first.

    Args:
        counts: pixels per bin (bins in increasing order of the sort key).
        error_sums: error sum per bin.
        fractions: shares of pixels to remove, in [0, 1).

    Returns:
        The mean remaining error at each fraction (float64).
    """
    counts = counts.double().flip(0)
    error_sums = error_sums.double().flip(0)
    total = counts.sum()
    removed_before = torch.cumsum(counts, 0) - counts  # pixels in the bins above each bin
    error_before = torch.cumsum(error_sums, 0) - error_sums
    mean_error = error_sums / counts.clamp_min(1)
    curve = []
    for fraction in fractions.double().tolist():
        remove = fraction * total
        # The bin holding the boundary: whole bins above it go, a share of it goes.
        inside = (removed_before <= remove) & (remove < removed_before + counts)
        if not bool(inside.any()):
            curve.append(torch.tensor(math.nan, dtype=torch.float64))
            continue
        index = int(torch.nonzero(inside)[0])
        removed_error = error_before[index] + (remove - removed_before[index]) * mean_error[index]
        curve.append((error_sums.sum() - removed_error) / (total - remove))
    return torch.stack(curve)


def sparsification_area(counts: Tensor, error_sums: Tensor) -> Tensor:
    """The exact integral over f in [0, 1] of `sparsification_curve`.

    Bins go highest first; a share of the boundary bin goes at that bin's mean error ``mu``.
    While bin j is being removed (``f`` from ``1 - u0`` to ``1 - u1``, ``u`` the share
    left), the remaining mean is ``C / (N u) + mu`` with ``C`` = error of the later bins
    minus ``mu`` times their pixels, so its integral is ``(C / N) log(u0 / u1) + mu (u0 -
    u1)``. The last non-empty bin has no later pixels (``C = 0``), so ``u1 = 0`` is no
    singularity. float64.
    """
    counts = counts.double().flip(0)
    error_sums = error_sums.double().flip(0)
    total = counts.sum()
    if total <= 0:
        return torch.tensor(math.nan, dtype=torch.float64)
    later = total - torch.cumsum(counts, 0)  # pixels removed after each bin
    later_error = error_sums.sum() - torch.cumsum(error_sums, 0)
    mean_error = error_sums / counts.clamp_min(1)
    left_before = (later + counts) / total  # u0: share left when the bin starts to go
    left_after = later / total  # u1
    inner = (counts > 0) & (later > 0)
    ratio = torch.where(inner, left_before / left_after.clamp_min(1e-300), torch.ones_like(total))
    c = torch.where(inner, later_error - mean_error * later, torch.zeros_like(total))
    return (c / total * torch.log(ratio) + mean_error * (left_before - left_after)).sum()


def ause_from_histograms(
    scale_counts: Tensor,
    scale_errors: Tensor,
    error_counts: Tensor,
    error_sums: Tensor,
    fractions: int = DEFAULT_FRACTIONS,
) -> dict[str, Tensor]:
    """``fractions`` (a grid for the figure), both curves on it, and ``ause`` and
    ``ause_random`` integrated exactly (`sparsification_area`)."""
    grid = torch.arange(fractions, dtype=torch.float64) / fractions
    by_uncertainty = sparsification_curve(scale_counts, scale_errors, grid)
    oracle = sparsification_curve(error_counts, error_sums, grid)
    mean_error = error_sums.double().sum() / error_counts.double().sum().clamp_min(1)
    oracle_area = sparsification_area(error_counts, error_sums)
    return {
        "fractions": grid,
        "by_uncertainty": by_uncertainty,
        "oracle": oracle,
        "ause": sparsification_area(scale_counts, scale_errors) - oracle_area,
        "ause_random": mean_error - oracle_area,
    }


class AleatoricRegressionMetrics(Metric):
    """NLL, AUSE and ±1/±2 sigma coverage of a regression head's per-pixel log-scale.

    ``update(residual, s, mask)`` takes the head's residual components (BxDxHxW), its
    bounded log-scale (Bx1xHxW) and the valid pixels (BxHxW); the per-pixel error ranked for
    AUSE is ``sum_c |r_c|`` (the head's L1 term), the uncertainty is ``s``.

    ``compute()``: ``nll`` (mean per-pixel NLL, constants dropped, as the loss), ``ause``,
    ``ause_random``, ``coverage_1sigma``, ``coverage_2sigma`` and ``mean_sigma``.

    Args:
        likelihood: the head's per-pixel likelihood.
        fractions: points of the sparsification curves drawn in the figure (AUSE is exact).
    """

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        likelihood: PixelLikelihood | str = PixelLikelihood.LAPLACE,
        fractions: int = DEFAULT_FRACTIONS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.likelihood = PixelLikelihood(likelihood)
        self.fractions = fractions
        zero = torch.tensor(0.0, dtype=torch.float64)
        for name in ("nll_sum", "pixels", "sigma_sum", "components", "within_1", "within_2"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        for name, bins in (
            ("scale_counts", SCALE_BINS),
            ("scale_errors", SCALE_BINS),
            ("error_counts", ERROR_BINS),
            ("error_sums", ERROR_BINS),
        ):
            self.add_state(
                name, default=torch.zeros(bins, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, residual: Tensor, s: Tensor, mask: Tensor) -> None:
        mask = mask.bool()
        residual = residual.detach().float()
        s = s.detach().float().reshape(residual.shape[0], *residual.shape[2:])
        nll = pixel_nll(residual, s, self.likelihood)[mask].double()
        error = residual.abs().sum(1)[mask].double()
        s_valid = s[mask]
        sigma = sigma_from_log_scale(s_valid, self.likelihood).double()
        components = residual.abs().movedim(1, -1)[mask].double()  # N x D
        self.nll_sum += nll.sum()
        self.pixels += nll.numel()
        self.sigma_sum += sigma.sum()
        self.components += components.numel()
        self.within_1 += (components <= sigma[:, None]).sum()
        self.within_2 += (components <= 2 * sigma[:, None]).sum()
        scale_bin = (s_valid.double() + LOG_SCALE_BOUND) / (2 * LOG_SCALE_BOUND) * SCALE_BINS
        scale_bin = scale_bin.long().clamp(0, SCALE_BINS - 1)
        self.scale_counts += torch.bincount(scale_bin, minlength=SCALE_BINS).double()
        self.scale_errors += torch.bincount(scale_bin, weights=error, minlength=SCALE_BINS)
        low, high = LOG10_ERROR_RANGE
        log_error = torch.log10(error.clamp_min(10.0**low))
        error_bin = ((log_error - low) / (high - low) * ERROR_BINS).long()
        error_bin = error_bin.clamp(0, ERROR_BINS - 1)
        self.error_counts += torch.bincount(error_bin, minlength=ERROR_BINS).double()
        self.error_sums += torch.bincount(error_bin, weights=error, minlength=ERROR_BINS)

    def curves(self) -> dict[str, Tensor]:
        """The sparsification curves and AUSE (on synced states inside ``compute``)."""
        return ause_from_histograms(
            self.scale_counts,
            self.scale_errors,
            self.error_counts,
            self.error_sums,
            self.fractions,
        )

    def compute(self) -> dict[str, Tensor]:
        nan = torch.tensor(math.nan, dtype=torch.float64, device=self.pixels.device)
        if self.pixels == 0:
            keys = (
                "nll",
                "ause",
                "ause_random",
                "coverage_1sigma",
                "coverage_2sigma",
                "mean_sigma",
            )
            return {key: nan.float() for key in keys}
        curves = self.curves()
        return {
            "nll": (self.nll_sum / self.pixels).float(),
            "ause": curves["ause"].float(),
            "ause_random": curves["ause_random"].float(),
            "coverage_1sigma": (self.within_1 / self.components).float(),
            "coverage_2sigma": (self.within_2 / self.components).float(),
            "mean_sigma": (self.sigma_sum / self.pixels).float(),
        }

    def figure_data(self) -> dict[str, object]:
        """Synced curves for the sparsification plot, plus the nominal coverages."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=True):
            data = {key: value.cpu() for key, value in self.curves().items()}
        data["nominal"] = (
            nominal_coverage(1, self.likelihood),
            nominal_coverage(2, self.likelihood),
        )
        return data


class SemanticCalibration(Metric):
    """NLL and expected calibration error of the Monte-Carlo mean class probabilities.

    ``update(logits, s, target)``: logits BxCxHxW, s Bx1xHxW (None: plain softmax), target
    BxHxW. Probabilities are ``1/T sum_t softmax(logits + exp(s/2) eps_t)``.

    ``compute()``: ``nll`` (mean ``-log p[y]`` over labelled pixels), ``ece`` (15 bins, as
    torchmetrics), ``mean_sigma`` (mean logit-noise std).

    Args:
        ignore_index: target label left out.
        samples: T.
        n_bins: calibration bins (15).
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, ignore_index: int = 255, samples: int = 10, n_bins: int = 15, **kwargs):
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.samples = samples
        self.n_bins = n_bins
        zero = torch.tensor(0.0, dtype=torch.float64)
        for name in ("nll_sum", "pixels", "sigma_sum"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        # n_bins + 1 bins: torchmetrics' bucketize puts confidence 1.0 into its own bin.
        for name in ("bin_counts", "bin_confidence", "bin_accuracy"):
            self.add_state(
                name, default=torch.zeros(n_bins + 1, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, logits: Tensor, s: Tensor | None, target: Tensor) -> None:
        logits = logits.detach().float()
        if s is None:
            log_probs = torch.log_softmax(logits, dim=1)
        else:
            # A fixed noise stream: evaluation is repeatable and leaves the global RNG alone.
            generator = torch.Generator(device=logits.device).manual_seed(0)
            log_probs = mc_log_probabilities(logits, s.detach(), self.samples, generator)
            self.sigma_sum += torch.exp(0.5 * s.float())[:, 0][target != self.ignore_index].sum()
        self._accumulate(log_probs, target)

    def _accumulate(self, log_probs: Tensor, target: Tensor) -> None:
        labelled = target != self.ignore_index
        log_probs = log_probs.movedim(1, -1)[labelled].double()  # N x C
        target = target[labelled]
        self.nll_sum -= log_probs.gather(1, target[:, None]).sum()
        self.pixels += target.numel()
        confidence, predicted = log_probs.exp().max(dim=1)
        correct = (predicted == target).double()
        boundaries = torch.linspace(
            0, 1, self.n_bins + 1, dtype=torch.float64, device=target.device
        )
        index = torch.bucketize(confidence, boundaries, right=True) - 1
        self.bin_counts += torch.bincount(index, minlength=self.n_bins + 1).double()
        self.bin_confidence += torch.bincount(index, weights=confidence, minlength=self.n_bins + 1)
        self.bin_accuracy += torch.bincount(index, weights=correct, minlength=self.n_bins + 1)

    def reliability(self) -> dict[str, Tensor]:
        """Per-bin count, mean confidence and accuracy (nan in empty bins), and ``ece``."""
        counts = self.bin_counts
        confidence = self.bin_confidence / counts
        accuracy = self.bin_accuracy / counts
        share = counts / counts.sum().clamp_min(1)
        gap = torch.nan_to_num((accuracy - confidence).abs())
        return {
            "counts": counts,
            "confidence": confidence,
            "accuracy": accuracy,
            "ece": (gap * share).sum(),
        }

    def compute(self) -> dict[str, Tensor]:
        if self.pixels == 0:
            nan = torch.tensor(math.nan)
            return {"nll": nan, "ece": nan, "mean_sigma": nan}
        return {
            "nll": (self.nll_sum / self.pixels).float(),
            "ece": self.reliability()["ece"].float(),
            "mean_sigma": (self.sigma_sum / self.pixels).float(),
        }

    def figure_data(self) -> dict[str, Tensor]:
        """Synced per-bin values for the reliability diagram."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=True):
            return {key: value.cpu() for key, value in self.reliability().items()}
