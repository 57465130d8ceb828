"""How a dense metric averages over a split: per pixel (exact) or per batch (published code).

mtlscene averages every dense error over all valid pixels of the split: a metric accumulates
sums and counts, so the result does not depend on how the images were batched, and under DDP
it equals the result of one process that saw every image. The code behind the published NYUv2
tables (mtan's ``depth_error``/``normal_error``, which nash-mtl and FAMO reuse) computes each
metric per batch (the mean, median or share over that batch's valid pixels) and then averages
the batch values with equal weight. The two agree only when every batch has the same number
of valid pixels; otherwise a batch with few valid pixels (a close-up with much invalid depth,
the last, smaller batch) counts as much as a full one, and a median of per-batch medians is not
the median of the split. The per-batch number also depends on the batch size, the order of the
loader and, under DDP, on how the images were shared between processes, so it is offered only
to compare with published numbers (``metric_average: batch``); batches without any valid pixel
are skipped (the published code would divide by zero there).
"""

from __future__ import annotations

METRIC_AVERAGES = ("pixel", "batch")


def check_metric_average(value: str, owner: str) -> str:
    """Validate a ``metric_average`` option, naming the option that holds it."""
    if value not in METRIC_AVERAGES:
        raise ValueError(
            f"{owner} must be 'pixel' (mean over all valid pixels of the split, exact under "
            f"DDP) or 'batch' (per-batch means averaged over batches, as published code does), "
            f"got {value!r}"
        )
    return value
