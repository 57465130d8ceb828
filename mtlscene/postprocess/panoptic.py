"""Panoptic fusion: one class per pixel and one instance per thing pixel, batched in torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlscene.data.cityscapes.labels import IGNORE_INDEX, INSTANCE_TRAIN_IDS
from mtlscene.describe import RecordsInitArgs
from mtlscene.postprocess.base import PostProcessor
from mtlscene.tasks.kinds import HeadKind

VOID = IGNORE_INDEX
"""Category of void pixels in a fused panoptic map (their instance is 0)."""


class PanopticFusion(RecordsInitArgs, PostProcessor):
    """Fuse the semantic prediction and the clustered instances into a panoptic segmentation.

    - Stuff pixels take their predicted semantic class (instance 0).
    - Pixels of a clustered instance take that instance; its class is the majority of its
      pixels' predicted thing classes (an instance with no thing pixel becomes void).
    - Thing pixels that no instance claimed become void: a thing class without an instance
      is not a valid panoptic segment, and guessing one would add a false positive.
    - Every segment (stuff region of one class, or instance) smaller than ``min_area`` pixels
      becomes void: tiny segments are mostly noise and each would count as a false positive.

    Everything runs on whole batches with tensor operations, on the device of the inputs.

    Args:
        min_area: segments with fewer pixels become void (0 keeps all). The default suits
            128x256; scale it with the image area (e.g. x64 for 1024x2048).
        thing_train_ids: trainIds that are things (default: CityScapes' eight).
        heads: role -> task name for ``semantic`` and ``offsets`` (see `PostProcessor`);
            fusion reads the semantic logits and the instances clustered from the offsets.
    """

    requires = {
        "semantic": HeadKind.CLASS_LOGITS_TRAINID,
        "offsets": HeadKind.CENTROID_VECTORS,
    }

    def __init__(
        self,
        min_area: int = 16,
        thing_train_ids: Sequence[int] | None = None,
        heads: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(heads)
        if min_area < 0:
            raise ValueError(f"PanopticFusion: min_area={min_area} must be >= 0")
        ids = list(INSTANCE_TRAIN_IDS if thing_train_ids is None else thing_train_ids)
        if not ids or min(ids) < 0 or max(ids) >= VOID:
            raise ValueError(f"PanopticFusion: thing_train_ids={ids} must be in 0..254")
        self.min_area = int(min_area)
        is_thing = torch.zeros(VOID + 1, dtype=torch.bool)
        is_thing[torch.tensor(ids)] = True
        self.register_buffer("_is_thing", is_thing, persistent=False)

    @torch.no_grad()
    def from_outputs(
        self, outputs: Mapping[str, Tensor], instances: Sequence[Mapping[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Fuse from raw outputs (task name -> tensor) and the clustering's per-image dicts."""
        semantic = self.inputs(outputs)["semantic"].argmax(dim=1)
        instance_map = torch.stack([image["instance_map"] for image in instances])
        return self(semantic, instance_map)

    @torch.no_grad()
    def forward(self, semantic: Tensor, instance_map: Tensor) -> dict[str, Tensor]:
        """Fuse a batch.

        Args:
            semantic: predicted trainIds, long BxHxW.
            instance_map: long BxHxW, 0 for no instance and i > 0 for the i-th instance.

        Returns:
            ``category`` long BxHxW (trainIds, `VOID` = 255 for void) and ``instance``
            long BxHxW (the instance id for thing segments, 0 for stuff and void).
        """
        if semantic.shape != instance_map.shape or semantic.dim() != 3:
            raise ValueError(
                "PanopticFusion: semantic and instance_map must both be BxHxW, got "
                f"{tuple(semantic.shape)} and {tuple(instance_map.shape)}"
            )
        semantic = semantic.long().clamp(0, VOID)
        instance_map = instance_map.long()
        batch = semantic.shape[0]
        slots = int(instance_map.max()) + 1 if instance_map.numel() else 1
        # (image, instance) -> row; count each row's pixels per predicted class.
        row = torch.arange(batch, device=semantic.device).view(-1, 1, 1) * slots + instance_map
        votes = torch.bincount(
            (row * (VOID + 1) + semantic).flatten(), minlength=batch * slots * (VOID + 1)
        ).view(batch * slots, VOID + 1)
        votes = votes * self._is_thing  # only thing classes can label an instance
        best, majority = votes.max(dim=1)
        majority = torch.where(best > 0, majority, VOID)
        has_instance = instance_map > 0
        category = torch.where(
            has_instance,
            majority[row],
            torch.where(self._is_thing[semantic], VOID, semantic),
        )
        instance = torch.where(has_instance & (category != VOID), instance_map, 0)
        if self.min_area > 0:
            # A segment is one (image, instance, category); stuff and void have instance 0.
            segment = (row - instance_map + instance) * (VOID + 1) + category
            _, inverse, counts = torch.unique(segment, return_inverse=True, return_counts=True)
            small = counts[inverse] < self.min_area
            category = category.masked_fill(small, VOID)
            instance = instance.masked_fill(small, 0)
        return {"category": category, "instance": instance}
