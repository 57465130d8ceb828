"""``test`` scored by the official CityScapes evaluators at each frame's original resolution."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image

from mtlscene.callbacks.metrics_table import format_table
from mtlscene.data.cityscapes.encoding import decode_disparity
from mtlscene.data.cityscapes.layout import SampleFiles, find_samples
from mtlscene.data.io import read_png
from mtlscene.evaluation.cityscapes_format import (
    SEMANTIC_SUFFIX,
    evaluate_instance_level,
    evaluate_pixel_level,
    write_instance_result,
    write_semantic_result,
)
from mtlscene.metrics.depth import DisparityMetrics

# The columns of the paper's full-resolution CityScapes table that the official evaluators
# compute: (key logged under test/official/, column title, scale).
OFFICIAL_COLUMNS = (
    ("iou_class", "IoU class [%]", 100.0),
    ("iiou_class", "iIoU class [%]", 100.0),
    ("iou_category", "IoU category [%]", 100.0),
    ("iiou_category", "iIoU category [%]", 100.0),
    ("ap", "AP [%]", 100.0),
    ("ap50", "AP 50% [%]", 100.0),
    ("ap100m", "AP 100m [%]", 100.0),
    ("ap50m", "AP 50m [%]", 100.0),
    ("disparity_mae", "Disparity mean error [px]", 1.0),
    ("disparity_rmse", "Disparity RMS error [px]", 1.0),
)


class OfficialEvaluation(Callback):
    """Scores ``test`` with cityscapesscripts at the resolution of the source files.

    During ``test`` every frame's prediction is brought back to the size of its original
    files (2048x1024 for CityScapes): class scores upsampled bilinearly before the argmax,
    instance masks upsampled nearest, disparity upsampled bilinearly and multiplied by the
    resize factor (disparity is in pixels). Semantic and instance results are written in
    the official format under ``output_dir``; at the end of the epoch the official
    pixel-level (IoU, iIoU for classes and categories) and instance-level (AP, AP50,
    AP 100m, AP 50m) evaluations run on rank zero over the frames that were predicted, and
    the disparity mean and RMS error are taken against the original disparity PNGs (summed
    across processes). Everything is logged as ``test/official/<column>`` and printed as a
    table. The test data set must read CityScapes files (``root`` and ``split`` attributes).

    Args:
        output_dir: where the official-format results go; default ``official_<split>`` in
            the run's log directory. Its ``semantic/`` and ``instance/`` folders are
            emptied when a test starts.
        keep_files: keep the result files after the evaluation (e.g. to inspect them);
            False deletes them.
        distances: compute AP 100m and AP 50m (needs ``disparity/`` and ``camera/``, see
            `mtlscene.evaluation.evaluate_instance_level`).
    """

    def __init__(
        self, output_dir: str | None = None, keep_files: bool = True, distances: bool = True
    ) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.keep_files = keep_files
        self.distances = distances
        self.results: dict[str, float] = {}

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loader = trainer.test_dataloaders
        dataset = getattr(loader[0] if isinstance(loader, list) else loader, "dataset", None)
        if not (hasattr(dataset, "root") and hasattr(dataset, "split")):
            raise TypeError(
                "OfficialEvaluation needs a test data set that reads CityScapes files (with "
                f"`root` and `split`), got {type(dataset).__name__}; remove the callback for "
                "other data"
            )
        self.root, self.split = Path(dataset.root), str(dataset.split)
        self.frames: dict[str, SampleFiles] = {
            s.stem: s for s in find_samples(self.root, self.split)
        }
        self.folder = self.output_dir or Path(trainer.log_dir or ".") / f"official_{self.split}"
        self.folder = Path(trainer.strategy.broadcast(str(self.folder)))
        heads = pl_module.heads
        semantic = heads["semantic"] if "semantic" in heads else None
        # Official result files hold labelIds, which only a trainId prediction maps to.
        self.semantic = getattr(semantic, "label_set", None) == "trainid"
        self.instances = self.semantic and getattr(pl_module, "clustering", None) is not None
        self.depth = "depth" in heads
        self.disparity = DisparityMetrics().to(pl_module.device)
        if trainer.is_global_zero:
            self._remove_results()  # stale results would count as extra predictions
        trainer.strategy.barrier()

    def _remove_results(self) -> None:
        # Only the folders this callback writes: output_dir may hold other files.
        for name in ("semantic", "instance"):
            shutil.rmtree(self.folder / name, ignore_errors=True)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Mapping[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, Mapping):
            raise TypeError(
                "OfficialEvaluation needs test_step to return the network outputs (a dict of "
                f"task name -> tensor), got {type(outputs).__name__}"
            )
        instances = pl_module.cluster_instances(outputs) if self.instances else None
        for index, stem in enumerate(batch["name"]):
            files = self.frames.get(stem)
            if files is None:
                raise KeyError(f"frame {stem} is not in {self.root}/leftImg8bit/{self.split}")
            with Image.open(files.label_ids) as label_image:
                size = (label_image.height, label_image.width)
            if self.semantic:
                self._write_semantic(stem, outputs["semantic"][index], size)
            if instances is not None:
                self._write_instances(stem, instances[index], size)
            if self.depth:
                self._update_disparity(files, outputs["depth"][index], size)

    def _write_semantic(self, stem: str, logits: torch.Tensor, size: tuple[int, int]) -> None:
        scores = F.interpolate(logits[None].float(), size=size, mode="bilinear")
        classes = scores[0].argmax(dim=0).to(torch.uint8).cpu().numpy()
        write_semantic_result(self.folder / "semantic", stem, classes)

    def _write_instances(self, stem: str, found: Mapping[str, Any], size: tuple[int, int]) -> None:
        masks = found["masks"]
        if len(masks):
            masks = F.interpolate(masks[None].float(), size=size, mode="nearest")[0] > 0.5
        masks = masks.cpu().numpy().astype(bool).reshape(len(masks), *size)
        write_instance_result(
            self.folder / "instance",
            stem,
            masks,
            found["labels"].cpu().numpy(),
            found["scores"].float().cpu().numpy(),
        )

    def _update_disparity(
        self, files: SampleFiles, prediction: torch.Tensor, size: tuple[int, int]
    ) -> None:
        # Disparity is in pixels of the working resolution: scale it with the width ratio,
        # the same factor the data set divides the ground truth by.
        factor = size[1] / prediction.shape[-1]
        upsampled = F.interpolate(prediction[None].float(), size=size, mode="bilinear")[0, 0]
        disparity, valid = decode_disparity(read_png(files.disparity))
        device = upsampled.device
        self.disparity.update(
            (upsampled * factor)[None],
            torch.from_numpy(disparity).to(device)[None],
            torch.from_numpy(valid).to(device)[None],
        )

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        results: dict[str, float] = {}
        if self.depth:
            disparity = self.disparity.compute()  # summed over every process
            results["disparity_mae"] = float(disparity["mae"])
            results["disparity_rmse"] = float(disparity["rmse"])
        trainer.strategy.barrier()  # every process has written its files
        if trainer.is_global_zero:
            results.update(self._official_scores())
            if not self.keep_files:
                self._remove_results()
        results = trainer.strategy.broadcast(results)
        self.results = results
        for key, value in results.items():
            pl_module.log(f"test/official/{key}", value)

    def _official_scores(self) -> dict[str, float]:
        scores: dict[str, float] = {}
        if self.semantic:
            folder = self.folder / "semantic"
            stems = [path.name[: -len(SEMANTIC_SUFFIX)] for path in folder.glob("*")]
            pixel = evaluate_pixel_level(
                self.root, self.split, folder, instance_level=True, stems=stems
            )
            scores["iou_class"] = pixel["miou"]
            scores["iiou_class"] = pixel["imiou"]
            scores["iou_category"] = pixel["category_miou"]
            scores["iiou_category"] = pixel["category_imiou"]
            if self.instances:
                instance = evaluate_instance_level(
                    self.root, self.split, self.folder / "instance", self.distances, stems
                )
                scores["ap"] = instance["ap"]
                scores["ap50"] = instance["ap50"]
                if self.distances:
                    scores["ap100m"] = instance["ap100m"]
                    scores["ap50m"] = instance["ap50m"]
        return scores

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not self.results:
            return
        rows = []
        for key, title, scale in OFFICIAL_COLUMNS:
            if key in self.results:
                value = self.results[key] * scale
                rows.append((title, "n/a" if math.isnan(value) else f"{value:.4f}"))
        print(
            "\n"
            + format_table(
                rows,
                f"Official CityScapes evaluation of {self.split} at the original resolution",
            ),
            flush=True,
        )
