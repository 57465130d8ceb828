"""CityScapes instance-level average precision (AP, AP50) as a DDP-exact torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mtlscene.data.cityscapes.labels import INSTANCE_TRAIN_IDS, TRAIN_CLASS_NAMES, label_id_lut

# np.arange exactly as cityscapesscripts builds it, so IoUs on a threshold compare the same way.
IOU_THRESHOLDS: tuple[float, ...] = tuple(np.arange(0.5, 1.0, 0.05).tolist())

# Raw instanceIds values the official script counts as "void" (labels ignored in evaluation).
_VOID_LABEL_IDS: tuple[int, ...] = tuple(
    lab.id for lab in _OFFICIAL_LABELS if lab.ignoreInEval and lab.id >= 0
)

# Per-prediction outcome at one IoU threshold.
_TP, _FP, _IGNORED = 1, 0, -1


class InstanceAveragePrecision(Metric):
    """Instance AP of CityScapes' ``evalInstanceLevelSemanticLabeling``, computed on tensors.

    Per image, every predicted mask of a thing class is matched to the ground-truth instances of
    its class; across all images each class gets a precision/recall curve per IoU threshold
    0.50:0.95:0.05, integrated the way the official script does (its step-width convolution).
    As there:

    - a match needs IoU strictly above the threshold; if several predictions match one ground
      truth, the best-scored is the true positive and the others are false positives;
    - ground truth smaller than ``min_region_pixels`` and group regions (instanceIds < 1000,
      e.g. "cargroup") are not counted, and a prediction matching one of them is ignored;
    - an unmatched prediction is ignored, not a false positive, when more than the threshold's
      fraction of its pixels covers void labels, groups or small instances of its class;
    - AP is nan for a class without ground truth and 0 for a class with ground truth but no
      prediction; ``ap`` averages the classes that have ground truth (nan if none does).

    Each prediction is reduced to one row (class, score, outcome at each threshold) inside
    ``update``, so the states are plain tensors concatenated or summed across processes.

    Args:
        min_region_pixels: smallest ground-truth instance that counts (the official 100 px is
            for 1024x2048; the default 10 suits Tiny CityScapes, 128x256).
        thing_train_ids: trainIds evaluated (default: CityScapes' eight thing classes).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    pred_labels: list[Tensor]
    pred_scores: list[Tensor]
    pred_outcomes: list[Tensor]
    num_gt: Tensor

    def __init__(
        self,
        min_region_pixels: int = 10,
        thing_train_ids: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.min_region_pixels = int(min_region_pixels)
        self.thing_train_ids = tuple(
            INSTANCE_TRAIN_IDS if thing_train_ids is None else thing_train_ids
        )
        self.class_names = tuple(TRAIN_CLASS_NAMES[i] for i in self.thing_train_ids)
        class_index = torch.full((256,), -1, dtype=torch.long)
        class_index[torch.tensor(self.thing_train_ids)] = torch.arange(len(self.thing_train_ids))
        self._class_index = class_index  # trainId -> position in thing_train_ids (-1: other)
        self._train_id_of_label = torch.from_numpy(label_id_lut("trainid").astype(np.int64))
        self._thresholds = torch.tensor(IOU_THRESHOLDS, dtype=torch.float64)
        # Rows are 1-D (outcomes flattened) so an empty rank's placeholder concatenates cleanly.
        self.add_state("pred_labels", default=[], dist_reduce_fx="cat")
        self.add_state("pred_scores", default=[], dist_reduce_fx="cat")
        self.add_state("pred_outcomes", default=[], dist_reduce_fx="cat")
        self.add_state(
            "num_gt",
            default=torch.zeros(len(self.thing_train_ids), dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, predictions: list[dict[str, Tensor]], instance_ids: Tensor) -> None:
        """Match one batch of predictions against its ground truth.

        Args:
            predictions: one dict per image with ``masks`` bool NxHxW, ``labels`` long N
                (trainIds) and ``scores`` float N, as ``CentroidVoteClustering`` returns.
            instance_ids: CityScapes instanceIds BxHxW (labelId*1000+k for instances, plain
                labelId below 1000).
        """
        if len(predictions) != instance_ids.shape[0]:
            raise ValueError(
                f"InstanceAveragePrecision: {len(predictions)} prediction dicts for "
                f"{instance_ids.shape[0]} ground-truth images"
            )
        for pred, gt in zip(predictions, instance_ids, strict=True):
            labels, scores, outcomes = self._match_image(pred, gt.long())
            self.pred_labels.append(labels)
            self.pred_scores.append(scores)
            self.pred_outcomes.append(outcomes.flatten())

    def _match_image(self, pred: dict[str, Tensor], gt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Outcome of each prediction of one image at each threshold; adds its GT counts."""
        device = gt.device
        class_index = self._class_index.to(device)
        if pred["masks"].shape[-2:] != gt.shape:
            raise ValueError(
                f"InstanceAveragePrecision: prediction masks {tuple(pred['masks'].shape)} must "
                f"be NxHxW with HxW = {tuple(gt.shape)} of instance_ids"
            )
        masks = pred["masks"].to(device).bool().flatten(1)
        pred_class = class_index[pred["labels"].to(device).long().clamp(0, 255)]
        sizes = masks.sum(dim=1)
        valid = (pred_class >= 0) & (sizes > 0)  # the official script skips these entirely
        masks, pred_class, sizes = masks[valid], pred_class[valid], sizes[valid]
        scores = pred["scores"].to(device).double()[valid]

        # Ground-truth regions: every distinct instanceIds value.
        values, inverse, gt_sizes = torch.unique(
            gt.flatten(), return_inverse=True, return_counts=True
        )
        label_id = torch.where(values >= 1000, values // 1000, values)
        train_id = self._train_id_of_label.to(device)[label_id.clamp(0, 255)]
        train_id[(label_id < 0) | (label_id > 255)] = 255
        gt_class = class_index[train_id]
        is_void = torch.isin(values, torch.tensor(_VOID_LABEL_IDS, device=device))
        is_group = (values < 1000) & (gt_class >= 0)
        is_small = gt_sizes < self.min_region_pixels
        counted = (values >= 1000) & (gt_class >= 0) & ~is_small
        self.num_gt += torch.bincount(gt_class[counted], minlength=len(self.thing_train_ids))

        # Intersection of every prediction with every region, from the prediction pixels only.
        p, pix = masks.nonzero(as_tuple=True)
        inter = torch.bincount(
            p * values.numel() + inverse[pix], minlength=masks.shape[0] * values.numel()
        ).view(masks.shape[0], values.numel())
        same_class = pred_class[:, None] == gt_class[None, :]
        iou = inter.double() / (sizes[:, None] + gt_sizes[None, :] - inter).double()
        iou = torch.where(same_class, iou, torch.zeros_like(iou))
        # The official script adds group pixels and small-instance pixels separately, so a small
        # group counts twice; kept for identical numbers.
        ignore_pixels = (inter * is_void).sum(1) + (inter * (same_class & is_group)).sum(1)
        ignore_pixels = ignore_pixels + (inter * (same_class & is_small)).sum(1)
        ignore_fraction = ignore_pixels.double() / sizes.double()

        if masks.shape[0] == 0:
            return pred_class, scores, torch.zeros(0, dtype=torch.long, device=device)
        outcomes = torch.full(
            (masks.shape[0], len(IOU_THRESHOLDS)), _FP, dtype=torch.long, device=device
        )
        for t, threshold in enumerate(self._thresholds.tolist()):
            over = iou > threshold
            matches_counted = over & counted[None, :]
            # Best-scored prediction per counted GT is the TP (IoU > 0.5 => at most one GT each).
            best = torch.where(matches_counted, scores[:, None], -torch.inf).argmax(dim=0)
            is_tp = torch.zeros(masks.shape[0], dtype=torch.bool, device=device)
            is_tp[best[matches_counted.any(dim=0)]] = True
            ignored = ~matches_counted.any(1) & (over.any(1) | (ignore_fraction > threshold))
            outcomes[is_tp, t] = _TP
            outcomes[ignored, t] = _IGNORED
        return pred_class, scores, outcomes

    def compute(self) -> dict[str, Tensor]:
        """``ap``, ``ap50`` and per class ``ap/<name>``, ``ap50/<name>`` (float32)."""
        device = self.num_gt.device
        labels = _cat(self.pred_labels, device).long()
        scores = _cat(self.pred_scores, device).double()
        outcomes = _cat(self.pred_outcomes, device).long().view(-1, len(IOU_THRESHOLDS))
        ap = torch.full((len(self.thing_train_ids), len(IOU_THRESHOLDS)), torch.nan)
        for c in range(len(self.thing_train_ids)):
            num_gt = int(self.num_gt[c])
            if num_gt == 0:
                continue
            mine = labels == c
            for t in range(len(IOU_THRESHOLDS)):
                rows = mine & (outcomes[:, t] != _IGNORED)
                ap[c, t] = (
                    cityscapes_average_precision(scores[rows], outcomes[rows, t] == _TP, num_gt)
                    if mine.any()
                    else 0.0
                )
        result = {"ap": ap.nanmean(), "ap50": ap[:, 0].nanmean()}
        for c, name in enumerate(self.class_names):
            result[f"ap/{name}"] = ap[c].mean()
            result[f"ap50/{name}"] = ap[c, 0]
        return {key: value.float().to(device) for key, value in result.items()}


def _cat(state: list[Tensor] | Tensor, device: torch.device) -> Tensor:
    """A concatenated list state (a tensor already after a DDP sync)."""
    if isinstance(state, Tensor):
        return state
    return dim_zero_cat(state) if state else torch.zeros(0, device=device)


def cityscapes_average_precision(scores: Tensor, is_tp: Tensor, num_gt: int) -> float:
    """AP of one class at one IoU threshold, as ``evaluateMatches`` of cityscapesscripts.

    Args:
        scores: confidence of each true positive and false positive (ignored ones removed).
        is_tp: whether each entry is a true positive.
        num_gt: ground-truth instances of the class (matched or not).

    Returns:
        The area under the precision/recall curve with the official step widths (each point
        weighs half the recall gap to both neighbours; an artificial point p=1, r=0 closes it).
    """
    if scores.numel() == 0:
        return 0.0
    order = torch.argsort(scores)
    sorted_scores = scores[order].double()
    cum_true = torch.cumsum(is_tp[order].double(), dim=0)
    num_entries, num_true = sorted_scores.numel(), cum_true[-1]
    first = torch.ones(num_entries, dtype=torch.bool, device=scores.device)
    first[1:] = sorted_scores[1:] != sorted_scores[:-1]
    start = first.nonzero().squeeze(1)  # first entry of each distinct score (a threshold)
    below = torch.where(start > 0, cum_true[(start - 1).clamp(min=0)], 0.0)
    tp = num_true - below
    fp = num_entries - start - tp
    precision = torch.cat((tp / (tp + fp), tp.new_ones(1)))
    recall = torch.cat((tp / num_gt, tp.new_zeros(1)))
    padded = torch.cat((recall[:1], recall, recall.new_zeros(1)))
    step_widths = 0.5 * (padded[:-2] - padded[2:])
    return float((precision * step_widths).sum())
