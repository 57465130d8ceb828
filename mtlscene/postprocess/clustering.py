"""Instance masks from predicted centroid vectors by Hough-style voting.

Every pixel of a predicted "thing" class votes for ``pixel + vector``, i.e. for the centroid
of the instance it believes it belongs to. Votes are counted in a heat map, the heat map is
box-filtered, its local maxima become instance centres, and each pixel joins the centre
nearest to its vote. This replaces the paper's OPTICS clustering with a few tensor operations
that run batched on CPU or GPU (``benchmarks/bench_clustering.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlscene.data.cityscapes.labels import INSTANCE_TRAIN_IDS
from mtlscene.describe import RecordsInitArgs
from mtlscene.postprocess.base import PostProcessor
from mtlscene.tasks.kinds import HeadKind

# Pixel x centre pairs evaluated at once when assigning pixels; bounds memory at full resolution.
_ASSIGN_CHUNK = 1 << 22


class CentroidVoteClustering(RecordsInitArgs, PostProcessor):
    """Cluster centroid votes of thing pixels into scored instance masks.

    Clustering is done per predicted class when ``group_by_class`` is true (the default): each
    thing class gets its own heat map and pixels join only centres of their own class, so a
    rider whose centroid coincides with that of its bicycle, or a person touching a car, stays
    a separate instance. With ``group_by_class=False`` all thing pixels share one heat map and
    an instance's label is the majority predicted class of its pixels, which tolerates noisy
    class boundaries inside one object (e.g. car vs. truck) at the price of merging co-centred
    objects of different classes.

    The defaults suit Tiny CityScapes (128x256) and vote errors of a few pixels: on synthetic
    scenes, AP stays above 0.95 up to 3 px Gaussian noise per axis. Larger ``vote_kernel`` and
    ``nms_kernel`` tolerate noisier vectors but merge instances whose centroids lie within
    ``nms_kernel // 2`` px; scale all pixel sizes with the working resolution.

    Args:
        thing_train_ids: trainIds whose pixels vote (default: CityScapes' eight thing classes).
        vote_kernel: side (px) of the box filter summing votes around each heat-map pixel; also
            the diameter within which a vote counts as "concentrated" for the score.
        nms_kernel: side (px) of the max-pool window of the non-maximum suppression; centres
            within ``nms_kernel // 2`` px (Chebyshev) of a stronger one are dropped.
        min_votes: smallest box-filtered vote count (votes within ``vote_kernel`` px) of a centre.
        min_votes_fraction: alternatively a fraction of the image area (H*W); the larger of the
            two thresholds applies, so one config can serve several resolutions.
        max_instances: most instances kept per image (the strongest centres).
        assign_radius: a pixel joins its nearest centre only if its vote lies within this many
            px of it; farther pixels stay unassigned.
        min_pixels: instances with fewer pixels are dropped (their pixels become unassigned).
        group_by_class: cluster each class separately (see above).
        max_candidates: local maxima examined per image before tie-breaking; bounds memory when
            a flat, noisy heat map has many equal maxima.
        heads: role -> task name for the two inputs, ``semantic`` (trainId class logits) and
            ``offsets`` (centroid vectors); by default the active heads of those kinds.
    """

    requires = {
        "semantic": HeadKind.CLASS_LOGITS_TRAINID,
        "offsets": HeadKind.CENTROID_VECTORS,
    }

    def __init__(
        self,
        thing_train_ids: Sequence[int] | None = None,
        vote_kernel: int = 7,
        nms_kernel: int = 11,
        min_votes: float = 5.0,
        min_votes_fraction: float = 0.0,
        max_instances: int = 100,
        assign_radius: float = 16.0,
        min_pixels: int = 10,
        group_by_class: bool = True,
        max_candidates: int = 4096,
        heads: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(heads)
        for name, kernel in (("vote_kernel", vote_kernel), ("nms_kernel", nms_kernel)):
            if kernel < 1 or kernel % 2 == 0:
                raise ValueError(f"CentroidVoteClustering: {name}={kernel} must be odd and >= 1")
        ids = list(INSTANCE_TRAIN_IDS if thing_train_ids is None else thing_train_ids)
        if not ids or min(ids) < 0 or max(ids) > 254:
            raise ValueError(f"CentroidVoteClustering: thing_train_ids={ids} must be in 0..254")
        self.vote_kernel = vote_kernel
        self.nms_kernel = nms_kernel
        self.min_votes = float(min_votes)
        self.min_votes_fraction = float(min_votes_fraction)
        self.max_instances = max_instances
        self.assign_radius = float(assign_radius)
        self.min_pixels = max(int(min_pixels), 1)
        self.group_by_class = group_by_class
        self.max_candidates = max_candidates
        # trainId -> heat-map channel (-1: not a thing). 256 entries covers IGNORE_INDEX.
        slot = torch.full((256,), -1, dtype=torch.long)
        slot[torch.tensor(ids)] = torch.arange(len(ids)) if group_by_class else 0
        self.register_buffer("_slot_of_class", slot, persistent=False)

    @torch.no_grad()
    def from_outputs(self, outputs: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        """Cluster a batch from the raw network outputs (task name -> tensor) of bound heads."""
        inputs = self.inputs(outputs)
        probs = inputs["semantic"].float().softmax(dim=1)
        return self(probs.argmax(dim=1), inputs["offsets"].float(), probs)

    @torch.no_grad()
    def forward(
        self, semantic: Tensor, offsets: Tensor, semantic_probs: Tensor | None = None
    ) -> list[dict[str, Tensor]]:
        """Cluster a batch.

        Args:
            semantic: predicted trainIds, long BxHxW.
            offsets: predicted (dy, dx) from each pixel to its instance centroid, float Bx2xHxW.
            semantic_probs: optional softmax probabilities BxCxHxW (C > max thing trainId); the
                mean probability of an instance's class over its pixels multiplies its score.

        Returns:
            One dict per image: ``masks`` bool NxHxW, ``labels`` long N (trainIds), ``scores``
            float N (sorted descending) and ``instance_map`` long HxW (0: none, i: masks[i-1]).
        """
        batch, height, width = semantic.shape
        if offsets.shape != (batch, 2, height, width):
            raise ValueError(
                f"CentroidVoteClustering: offsets shape {tuple(offsets.shape)} must be "
                f"{(batch, 2, height, width)} to match semantic"
            )
        if semantic_probs is not None and (
            semantic_probs.shape[0] != batch or semantic_probs.shape[2:] != (height, width)
        ):
            raise ValueError(
                "CentroidVoteClustering: semantic_probs must be BxCxHxW like semantic, got "
                f"{tuple(semantic_probs.shape)}"
            )
        semantic = semantic.long()
        offsets = offsets.float()
        slot_map = self._slot_of_class[semantic.clamp(0, 255)]
        img, ys, xs = (slot_map >= 0).nonzero(as_tuple=True)
        # Only classes present in the batch get a heat-map channel: the others hold no peak.
        slots = torch.unique(slot_map[img, ys, xs], return_inverse=True)[1]
        channels = int(slots.max()) + 1 if slots.numel() else 1
        votes = torch.stack((ys + offsets[img, 0, ys, xs], xs + offsets[img, 1, ys, xs]), dim=1)
        heat, raw = self._heat_map(img, slots, votes, (batch, channels, height, width))
        outputs = []
        for b in range(batch):
            member = img == b
            centres, centre_slots = self._find_centres(heat[b], raw[b], height, width)
            outputs.append(
                self._assign(
                    pixels=(ys[member], xs[member]),
                    votes=votes[member],
                    slots=slots[member],
                    classes=semantic[b, ys[member], xs[member]],
                    probs=None if semantic_probs is None else semantic_probs[b],
                    centres=centres,
                    centre_slots=centre_slots,
                    size=(height, width),
                )
            )
        return outputs

    def _heat_map(
        self, img: Tensor, slots: Tensor, votes: Tensor, shape: tuple[int, int, int, int]
    ) -> tuple[Tensor, Tensor]:
        """Raw vote counts and their box-filtered sums, both of ``shape`` (B, channels, H, W)."""
        batch, channels, height, width = shape
        rounded = votes.round().long()
        inside = (
            (rounded[:, 0] >= 0)
            & (rounded[:, 0] < height)
            & (rounded[:, 1] >= 0)
            & (rounded[:, 1] < width)
        )
        # Votes outside the image cannot mark a centre; their pixels may still join one.
        flat = ((img * channels + slots) * height + rounded[:, 0]) * width + rounded[:, 1]
        raw = torch.zeros(batch * channels * height * width, device=votes.device)
        raw.index_add_(0, flat[inside], torch.ones_like(flat[inside], dtype=raw.dtype))
        raw = raw.view(shape)
        return _box_sum(raw, self.vote_kernel), raw

    def _find_centres(
        self, heat: Tensor, raw: Tensor, height: int, width: int
    ) -> tuple[Tensor, Tensor]:
        """Peaks of one image's heat map (channels x H x W): positions K x 2 and channels K."""
        k = self.nms_kernel
        pooled = _sliding_max(_sliding_max(heat, k, dim=-1), k, dim=-2)
        threshold = max(self.min_votes, self.min_votes_fraction * height * width)
        chan, py, px = ((heat == pooled) & (heat >= threshold)).nonzero(as_tuple=True)
        value = heat[chan, py, px].double()
        # Box filtering turns a sharp vote spike into a plateau of equal maxima; prefer the pixel
        # with most raw votes, then the first in raster order (stable sort), and suppress the
        # rest of the plateau below.
        key = value * (raw.max().double() + 1) + raw[chan, py, px].double()
        order = torch.sort(key, descending=True, stable=True).indices[: self.max_candidates]
        chan, py, px = chan[order], py[order], px[order]
        near = (
            (chan[:, None] == chan[None, :])
            & ((py[:, None] - py[None, :]).abs() <= k // 2)
            & ((px[:, None] - px[None, :]).abs() <= k // 2)
        )
        stronger = torch.ones_like(near).triu(diagonal=1)  # [j, i]: j ranks above i
        keep = ~(near & stronger).any(dim=0)
        keep_idx = keep.nonzero().squeeze(1)[: self.max_instances]
        centres = torch.stack((py[keep_idx], px[keep_idx]), dim=1).float()
        return centres, chan[keep_idx]

    def _assign(
        self,
        pixels: tuple[Tensor, Tensor],
        votes: Tensor,
        slots: Tensor,
        classes: Tensor,
        probs: Tensor | None,
        centres: Tensor,
        centre_slots: Tensor,
        size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """Give each thing pixel of one image to its nearest centre and build the outputs."""
        device = votes.device
        nearest = torch.full((votes.shape[0],), -1, dtype=torch.long, device=device)
        distance = torch.full((votes.shape[0],), float("inf"), device=device)
        num_centres = centres.shape[0]
        chunk = max(_ASSIGN_CHUNK // max(num_centres, 1), 1)
        for start in range(0, votes.shape[0] if num_centres else 0, chunk):
            part = slice(start, start + chunk)
            d2 = (votes[part, None, :] - centres[None, :, :]).square().sum(dim=2)
            d2 = d2.masked_fill(slots[part, None] != centre_slots[None, :], float("inf"))
            best, index = d2.min(dim=1)
            distance[part] = best.sqrt()
            nearest[part] = index
        nearest[distance > self.assign_radius] = -1
        member = nearest >= 0
        idx, cls = nearest[member], classes[member]

        counts = torch.bincount(idx, minlength=num_centres)
        concentrated = (distance[member] <= self.vote_kernel / 2).float()
        concentration = torch.bincount(idx, concentrated, minlength=num_centres)
        concentration = concentration / counts.clamp(min=1)
        # Majority class of the members (trivially the centre's class when grouped by class).
        num_labels = int(cls.max()) + 1 if cls.numel() else 1
        votes_per_label = torch.bincount(idx * num_labels + cls, minlength=num_centres * num_labels)
        labels = votes_per_label.view(num_centres, num_labels).argmax(dim=1)
        scores = concentration
        if probs is not None:
            ys, xs = pixels[0][member], pixels[1][member]
            conf = probs[labels[idx], ys, xs].float()
            scores = scores * torch.bincount(idx, conf, minlength=num_centres) / counts.clamp(1)

        kept = (counts >= self.min_pixels).nonzero().squeeze(1)
        kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices]
        new_id = torch.zeros(num_centres + 1, dtype=torch.long, device=device)
        new_id[kept + 1] = torch.arange(1, kept.numel() + 1, device=device)
        instance_map = torch.zeros(size, dtype=torch.long, device=device)
        instance_map[pixels[0], pixels[1]] = new_id[nearest + 1]
        ids = torch.arange(1, kept.numel() + 1, device=device)
        return {
            "masks": instance_map.unsqueeze(0) == ids[:, None, None],
            "labels": labels[kept],
            "scores": scores[kept].float(),
            "instance_map": instance_map,
        }


def _box_sum(x: Tensor, k: int) -> Tensor:
    """Sums over centred k x k windows (zero padding) of ... x H x W, via cumulative sums.

    Vote counts are integers, so the float32 sums are exact (below 2**24) and equal sums
    compare equal; this is also several times faster on CPU than ``avg_pool2d``.
    """
    r = k // 2
    rows = F.pad(x, (r + 1, r)).cumsum(dim=-1)
    x = rows[..., k:] - rows[..., :-k]
    cols = F.pad(x, (0, 0, r + 1, r)).cumsum(dim=-2)
    return cols[..., k:, :] - cols[..., :-k, :]


def _sliding_max(x: Tensor, k: int, dim: int) -> Tensor:
    """Max over centred windows of k along ``dim`` (-1 or -2), in log2(k) passes.

    Each pass doubles the window by taking the max with a shifted copy; much faster on CPU
    than ``max_pool2d``, which also computes indices.
    """
    r = k // 2
    m, width = F.pad(x, (r, r) if dim == -1 else (0, 0, r, r), value=-torch.inf), 1
    while width < k:
        step = min(width, k - width)
        size = m.shape[dim] - step
        m = torch.maximum(m.narrow(dim, 0, size), m.narrow(dim, step, size))
        width += step
    return m
