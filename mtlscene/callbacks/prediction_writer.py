"""Writes predictions as pictures and in the official CityScapes benchmark format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from mtlscene.data.transforms import resize_nearest
from mtlscene.evaluation.cityscapes_format import write_instance_result, write_semantic_result
from mtlscene.visualize import (
    colorize_disparity,
    colorize_semantic,
    make_panel,
    overlay_instances,
    to_uint8_image,
)


class PredictionWriter(BasePredictionWriter):
    """Saves, for every input image, pictures a person can look at and benchmark files.

    Layout under ``output_dir``:

    - ``pictures/{stem}_semantic.png``: semantic map in the official CityScapes palette;
    - ``pictures/{stem}_instances.png``: recovered instances overlaid on the image;
    - ``pictures/{stem}_depth.png``: disparity (or metric depth) as a colour map;
    - ``pictures/{stem}_panel.png``: input and all outputs side by side;
    - ``cityscapes/semantic/{stem}_pred_labelIds.png``: pixel-level results (labelIds);
    - ``cityscapes/instance/{stem}_pred_instances.txt`` + masks: instance-level results.

    The ``cityscapes/`` folders are what ``csEvalPixelLevelSemanticLabeling`` and
    ``csEvalInstanceLevelSemanticLabeling`` read (``CITYSCAPES_RESULTS=.../semantic``).

    Args:
        output_dir: where to write.
        pictures: write the PNG pictures.
        benchmark: write the official result format.
        benchmark_size: (height, width) the benchmark files are upsampled to (nearest), e.g.
            (1024, 2048) for the official server; None keeps the working resolution.
        metric_depth: colour-code metric depth (baseline * fx / disparity, metres) instead of
            disparity, when the data provides the camera.
        max_depth: depth in metres at the far end of the colour map.
        label_set: label set of the semantic head ("trainid" or "category").
    """

    def __init__(
        self,
        output_dir: str = "predictions",
        pictures: bool = True,
        benchmark: bool = True,
        benchmark_size: tuple[int, int] | None = None,
        metric_depth: bool = False,
        max_depth: float = 80.0,
        label_set: str = "trainid",
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.pictures = pictures
        self.benchmark = benchmark
        self.benchmark_size = tuple(benchmark_size) if benchmark_size else None
        self.metric_depth = metric_depth
        self.max_depth = max_depth
        self.label_set = label_set
        self.written: list[Path] = []

    def write_on_batch_end(
        self,
        trainer,
        pl_module,
        prediction: dict[str, Any],
        batch_indices,
        batch,
        batch_idx,
        dataloader_idx,
    ) -> None:
        outputs = prediction["prediction"]
        for index, stem in enumerate(batch["name"]):
            self.write_image(stem, batch, outputs, index)

    def write_image(self, stem: str, batch: dict, outputs: dict, index: int) -> None:
        """Write every file of one image."""
        image = to_uint8_image(batch["image"][index].float().cpu())
        # (file suffix, panel title, picture) for every output of this image.
        pictures: list[tuple[str, str, np.ndarray]] = []
        if "semantic" in outputs:
            semantic = outputs["semantic"][index].cpu().numpy().astype(np.uint8)
            pictures.append(("semantic", "semantic", colorize_semantic(semantic, self.label_set)))
            if self.benchmark and self.label_set == "trainid":
                write_semantic_result(
                    self.output_dir / "cityscapes" / "semantic",
                    stem,
                    self._benchmark_resize(semantic),
                    self.label_set,
                )
        if "instances" in outputs:
            instances = outputs["instances"][index]
            instance_map = instances["instance_map"].cpu().numpy()
            pictures.append(("instances", "instances", overlay_instances(image, instance_map)))
            if self.benchmark:
                masks = instances["masks"].cpu().numpy().astype(bool)
                write_instance_result(
                    self.output_dir / "cityscapes" / "instance",
                    stem,
                    np.stack([self._benchmark_resize(m) for m in masks]) if len(masks) else masks,
                    instances["labels"].cpu().numpy(),
                    instances["scores"].cpu().numpy(),
                )
        if "depth" in outputs:
            disparity = outputs["depth"][index].float().cpu().clamp_min(0).numpy()
            if self.metric_depth and "depth_scale" in batch:
                valid = disparity > 1e-3
                depth = np.where(
                    valid, float(batch["depth_scale"][index]) / np.maximum(disparity, 1e-3), 0
                )
                # Reversed map so that near is bright, as in the disparity pictures.
                picture = colorize_disparity(depth, valid, vmax=self.max_depth, cmap="magma_r")
                pictures.append(("depth", f"depth [m], 0-{self.max_depth:g}", picture))
            else:
                pictures.append(("depth", "disparity [px]", colorize_disparity(disparity)))
        if not self.pictures:
            return
        folder = self.output_dir / "pictures"
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, _, picture in pictures:
            path = folder / f"{stem}_{suffix}.png"
            Image.fromarray(picture).save(path)
            self.written.append(path)
        panels = [("input", image)] + [(title, picture) for _, title, picture in pictures]
        panel_path = folder / f"{stem}_panel.png"
        Image.fromarray(make_panel(panels, columns=min(len(panels), 4))).save(panel_path)
        self.written.append(panel_path)

    def _benchmark_resize(self, array: np.ndarray) -> np.ndarray:
        if self.benchmark_size is None:
            return array
        return resize_nearest(array, self.benchmark_size)
