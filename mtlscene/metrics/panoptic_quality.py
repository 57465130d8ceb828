"""Panoptic quality (PQ, SQ, RQ) by the rules of CityScapes' official panoptic evaluator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.detection import PanopticQuality
from torchmetrics.functional.detection._panoptic_quality_common import _panoptic_quality_compute

from mtlscene.data.cityscapes.labels import (
    IGNORE_INDEX,
    INSTANCE_TRAIN_IDS,
    TRAIN_CLASS_NAMES,
    label_id_lut,
)

VOID = IGNORE_INDEX


class CityscapesPanopticQuality(PanopticQuality):
    """PQ/SQ/RQ over the 19 trainIds, equal to cityscapesscripts' ``evalPanopticSemanticLabeling``.

    The states, their DDP reduction (sums of per-class IoU, TP, FP, FN) and the per-class
    formulas are torchmetrics' ``PanopticQuality`` (categories are trainIds; things are the
    eight instance classes). Only ``update`` differs, because torchmetrics' rules differ from
    the CityScapes evaluator that the benchmark uses:

    - CityScapes has *crowd* regions (a group of cars labelled ``car`` with no single
      instance, instanceIds < 1000 of a thing class). They are never matched nor missed, and
      an unmatched prediction lying more than half on void or on a crowd of its own class is
      not a false positive. torchmetrics has no crowd regions.
    - A predicted void pixel stays in the ground-truth segment's area for the IoU, and a
      ground-truth segment mostly predicted void is still a false negative; torchmetrics
      removes both.

    As there, a prediction matches a ground-truth segment of its class when their IoU is above
    0.5 (so matches are unique), with IoU = intersection / (union minus the prediction's
    pixels on ground-truth void); a class counts in an average when it has any TP, FP or FN;
    an average over no class is nan.

    ``update`` is vectorised over the whole batch: segments of different images never
    overlap, so one intersection table serves all images.

    Args:
        thing_train_ids: trainIds that are things (default: CityScapes' eight).
    """

    def __init__(self, thing_train_ids: Sequence[int] | None = None, **kwargs) -> None:
        things = [
            int(i) for i in (INSTANCE_TRAIN_IDS if thing_train_ids is None else thing_train_ids)
        ]
        stuffs = [i for i in range(len(TRAIN_CLASS_NAMES)) if i not in things]
        super().__init__(things=things, stuffs=stuffs, **kwargs)
        order = sorted(self.cat_id_to_continuous_id, key=self.cat_id_to_continuous_id.get)
        self.class_names = tuple(TRAIN_CLASS_NAMES[i] for i in order)
        self._is_thing_class = torch.tensor([i in self.things for i in order])
        slot = torch.full((VOID + 1,), -1, dtype=torch.long)  # trainId -> state index
        for train_id, index in self.cat_id_to_continuous_id.items():
            slot[train_id] = index
        self._slot = slot
        self._train_id_of_label = torch.from_numpy(label_id_lut("trainid").astype(np.int64))

    def update(  # type: ignore[override]
        self, category: Tensor, instance: Tensor, target_instance_ids: Tensor
    ) -> None:
        """Add a batch.

        Args:
            category: predicted trainIds, long BxHxW, 255 for void (as PanopticFusion gives).
            instance: predicted instance ids, long BxHxW (ignored for stuff and void).
            target_instance_ids: raw CityScapes instanceIds BxHxW (``labelId * 1000 + k`` for
                instances, the labelId otherwise), as the dataset's ``instance_ids``.
        """
        if not category.shape == instance.shape == target_instance_ids.shape:
            raise ValueError(
                "CityscapesPanopticQuality: category, instance and target_instance_ids must "
                f"have one shape, got {tuple(category.shape)}, {tuple(instance.shape)}, "
                f"{tuple(target_instance_ids.shape)}"
            )
        device = category.device
        slot = self._slot.to(device)
        batch = category.shape[0]
        image = torch.arange(batch, device=device).view(-1, *([1] * (category.dim() - 1)))

        # Ground truth: one segment per (image, raw id); void labels share one segment.
        raw = target_instance_ids.long()
        label = torch.where(raw >= 1000, raw // 1000, raw).clamp(
            0, len(self._train_id_of_label) - 1
        )
        gt_class = slot[self._train_id_of_label.to(device)[label]]  # -1: void
        raw = torch.where(gt_class < 0, -1, raw)
        gt_ids, gt_index = torch.unique(
            (image * (1 << 20) + raw + 1).flatten(), return_inverse=True
        )
        # Prediction: one segment per (image, class, instance); stuff ignores the instance.
        pred_class = slot[category.long().clamp(0, VOID)]
        thing = self._is_thing_class.to(device)[pred_class.clamp(min=0)] & (pred_class >= 0)
        pred_key = torch.where(
            pred_class < 0, -1, pred_class * (1 << 16) + torch.where(thing, instance.long(), 0)
        )
        pred_ids, pred_index = torch.unique(
            (image * (1 << 24) + pred_key + 1).flatten(), return_inverse=True
        )
        num_gt, num_pred = gt_ids.numel(), pred_ids.numel()
        inter = torch.bincount(gt_index * num_pred + pred_index, minlength=num_gt * num_pred).view(
            num_gt, num_pred
        )

        # Per-segment attributes, read from any one pixel of the segment.
        flat_gt_class = torch.zeros(num_gt, dtype=torch.long, device=device)
        flat_gt_class[gt_index] = gt_class.flatten()
        flat_raw = torch.zeros(num_gt, dtype=torch.long, device=device)
        flat_raw[gt_index] = raw.flatten()
        flat_pred_class = torch.zeros(num_pred, dtype=torch.long, device=device)
        flat_pred_class[pred_index] = pred_class.flatten()
        gt_void = flat_gt_class < 0
        gt_crowd = (
            ~gt_void
            & self._is_thing_class.to(device)[flat_gt_class.clamp(min=0)]
            & (flat_raw < 1000)
        )
        pred_void = flat_pred_class < 0

        inter = inter.double()
        gt_area, pred_area = inter.sum(dim=1), inter.sum(dim=0)
        pred_on_void = inter[gt_void].sum(dim=0)
        union = gt_area[:, None] + pred_area[None, :] - inter - pred_on_void[None, :]
        iou = inter / union.clamp(min=1)
        same_class = flat_gt_class[:, None] == flat_pred_class[None, :]
        countable_gt = ~gt_void & ~gt_crowd
        matched = same_class & countable_gt[:, None] & ~pred_void[None, :] & (iou > 0.5)
        gt_matched, pred_matched = matched.any(dim=1), matched.any(dim=0)

        crowd_same_class = (inter * (gt_crowd[:, None] & same_class)).sum(dim=0)
        ignored = (pred_on_void + crowd_same_class) > 0.5 * pred_area
        false_positive = ~pred_void & ~pred_matched & ~ignored
        false_negative = countable_gt & ~gt_matched

        size = self.iou_sum.numel()
        gt_slot, pred_slot = flat_gt_class.clamp(min=0), flat_pred_class.clamp(min=0)
        self.iou_sum += torch.zeros(size, dtype=torch.double, device=device).index_add_(
            0, gt_slot, (iou * matched).sum(dim=1)
        )
        self.true_positives += torch.bincount(gt_slot[gt_matched], minlength=size).int()
        self.false_negatives += torch.bincount(gt_slot[false_negative], minlength=size).int()
        self.false_positives += torch.bincount(pred_slot[false_positive], minlength=size).int()

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """``pq``, ``sq``, ``rq`` over all classes, ``*_things`` and ``*_stuff`` over each
        group, and ``pq/<class>`` per class (nan for a class with no TP, FP or FN, which the
        averages leave out as the official script does)."""
        pq, sq, rq, *_ = _panoptic_quality_compute(
            self.iou_sum, self.true_positives, self.false_positives, self.false_negatives
        )
        present = (self.true_positives + self.false_positives + self.false_negatives) > 0
        is_thing = self._is_thing_class.to(present.device)
        result: dict[str, Tensor] = {}
        for suffix, group in (
            ("", present),
            ("_things", present & is_thing),
            ("_stuff", present & ~is_thing),
        ):
            for name, values in (("pq", pq), ("sq", sq), ("rq", rq)):
                result[f"{name}{suffix}"] = values[group].mean()  # nan over no class
        per_class = torch.where(present, pq, torch.nan)
        for name, value in zip(self.class_names, per_class, strict=True):
            result[f"pq/{name.replace(' ', '_')}"] = value
        return result
