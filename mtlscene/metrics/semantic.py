"""Semantic segmentation metrics (IoU per class, mIoU, pixel accuracy) from a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from mtlscene.data.cityscapes.labels import IGNORE_INDEX, class_names


class SemanticSegmentationMetrics(Metric):
    """Confusion-matrix based IoU, mIoU and pixel accuracy, matching the CityScapes benchmark.

    The confusion matrix is a summed state, so the result under DDP is exactly the result of one
    process that saw every image. IoU of class c is ``tp / (tp + fp + fn)``; a class that never
    occurs in the ground truth nor in the predictions has an undefined IoU (nan) and is left out
    of the mean, which is the convention of cityscapesscripts' ``evalPixelLevelSemanticLabeling``.

    ``compute()`` returns ``miou``, ``pixel_accuracy`` (correct / valid pixels) and
    ``iou/<class name>`` for every class (spaces in names become underscores so the keys are
    safe for loggers). All values are nan when no valid pixel was accumulated.

    Args:
        num_classes: Number of classes C; targets are 0..C-1 or ``ignore_index``.
        ignore_index: Target value of pixels that are not evaluated.
        class_names: Names for the per-class keys; defaults to the class indices.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    confusion_matrix: Tensor

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} entries but num_classes is {num_classes}: "
                "pass one name per class"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        names = class_names if class_names is not None else [str(i) for i in range(num_classes)]
        self.class_names = [name.replace(" ", "_") for name in names]
        # Rows: ground truth, columns: prediction (the layout of the official script).
        self.add_state(
            "confusion_matrix",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    @classmethod
    def from_label_set(cls, label_set: str = "trainid", **kwargs) -> SemanticSegmentationMetrics:
        """Metrics for a CityScapes label set ("trainid": 19 classes, "category": 7), named."""
        names = class_names(label_set)
        return cls(num_classes=len(names), class_names=names, **kwargs)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch.

        Args:
            preds: Class indices (long, BxHxW) or logits/probabilities (float, BxCxHxW).
            target: Class indices (long, BxHxW) with ``ignore_index`` for unevaluated pixels.
        """
        if preds.is_floating_point():
            if preds.ndim != target.ndim + 1 or preds.shape[1] != self.num_classes:
                raise ValueError(
                    f"float preds must be logits of shape BxCxHxW with C={self.num_classes}, "
                    f"got {tuple(preds.shape)} for target {tuple(target.shape)}"
                )
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(
                f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape"
            )
        preds = preds.reshape(-1).long()
        target = target.reshape(-1).long()
        valid = target != self.ignore_index
        preds, target = preds[valid], target[valid]
        # Out-of-range values would silently shift other cells of the flattened matrix.
        if target.numel() and (target.min() < 0 or target.max() >= self.num_classes):
            raise ValueError(
                f"target has values outside 0..{self.num_classes - 1} that are not "
                f"ignore_index={self.ignore_index}: check the label set of the data"
            )
        if preds.numel() and (preds.min() < 0 or preds.max() >= self.num_classes):
            raise ValueError(f"preds has class indices outside 0..{self.num_classes - 1}")
        counts = torch.bincount(target * self.num_classes + preds, minlength=self.num_classes**2)
        self.confusion_matrix += counts.reshape(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, Tensor]:
        """IoU per class, mIoU over classes with a defined IoU, and pixel accuracy."""
        matrix = self.confusion_matrix.double()
        true_positive = matrix.diagonal()
        union = matrix.sum(dim=0) + matrix.sum(dim=1) - true_positive
        iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.nan)
        # 0 / 0 = nan when nothing was accumulated, and nanmean of all-nan is nan.
        results = {"miou": iou.nanmean(), "pixel_accuracy": true_positive.sum() / matrix.sum()}
        for name, value in zip(self.class_names, iou, strict=True):
            results[f"iou/{name}"] = value
        return {key: value.float() for key, value in results.items()}
