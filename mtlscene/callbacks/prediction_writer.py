"""Writes predictions as pictures and in the official CityScapes benchmark format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from mtlscene.data.resize import resize_nearest
from mtlscene.evaluation.cityscapes_format import write_instance_result, write_semantic_result
from mtlscene.evaluation.cityscapes_panoptic import (
    ANNOTATION_SUFFIX,
    merge_panoptic_results,
    panoptic_name,
    write_panoptic_result,
)
from mtlscene.tasks.kinds import HeadKind
from mtlscene.viz.colorize import (
    colorize_panoptic,
    colorize_semantic,
    overlay_instances,
    to_uint8_image,
)
from mtlscene.viz.panels import (
    class_legend,
    classes_present,
    enlarge,
    high_percentile,
    titled_grid,
    with_colorbar,
)

# Epistemic maps (``mtlscene predict --mc_dropout``) drawn as pictures, with their titles.
EPISTEMIC_TITLES = {
    "mutual_information": "mutual information [nats]",
    "epistemic_variance": "epistemic variance",
}


class PredictionWriter(BasePredictionWriter):
    """Saves, for every input image, pictures a person can look at and benchmark files.

    Files are written as each batch ends and nothing is kept: ``mtlscene predict`` runs
    with ``return_predictions=False``, so memory stays flat over any number of images.

    Layout under ``output_dir``:

    - ``pictures/{stem}_semantic.png``: semantic map in the official CityScapes palette;
    - ``pictures/{stem}_instances.png``: recovered instances overlaid on the image;
    - ``pictures/{stem}_panoptic.png``: panoptic map (class colours, instance shades, borders);
    - ``pictures/{stem}_depth.png``: disparity (or metric depth) as a colour map;
    - ``pictures/{stem}_{task}_sigma.png``: per-pixel sigma of each ``aleatoric`` head, with
      a colour bar (also in the panel), and ``uncertainty/{stem}_{task}_sigma.npy`` the raw
      float32 HxW map (target units; logit-noise std for semantics);
    - with ``mtlscene predict --mc_dropout N``, for each head trained with dropout, its
      epistemic maps beside those: ``uncertainty/{stem}_{task}_mutual_information.npy``
      (class heads, nats) or ``..._epistemic_variance.npy`` (regressions, target units
      squared), each also as ``pictures/{stem}_{task}_{map}.png`` and in the panel, and for
      aleatoric regressions ``..._total_variance.npy`` (epistemic + aleatoric; no picture);
    - ``pictures/{stem}_panel.png``: input and all outputs side by side;
    - ``cityscapes/semantic/{stem}_pred_labelIds.png``: pixel-level results (labelIds);
    - ``cityscapes/instance/{stem}_pred_instances.txt`` + masks: instance-level results;
    - ``cityscapes/panoptic/cityscapes_panoptic_{split}/{stem}_panoptic.png`` and, at the end
      of ``predict``, ``cityscapes/panoptic/cityscapes_panoptic_{split}.json``: panoptic
      results (COCO panoptic format; ``{stem}_panoptic.json`` per image beside the PNGs).

    The ``cityscapes/`` folders are what ``csEvalPixelLevelSemanticLabeling``,
    ``csEvalInstanceLevelSemanticLabeling`` and ``csEvalPanopticSemanticLabeling`` read
    (``CITYSCAPES_RESULTS=.../semantic``; panoptic: ``--prediction-json-file``).

    Outputs are found by head kind (class logits, disparity), not by task name.

    Args:
        output_dir: where to write.
        pictures: write the PNG pictures.
        benchmark: write the official result format.
        benchmark_size: (height, width) the benchmark files are upsampled to (nearest), e.g.
            (1024, 2048) for the official server; None keeps the working resolution.
        metric_depth: colour-code metric depth (baseline * fx / disparity, metres) instead of
            disparity, when the data provides the camera.
        max_depth: depth in metres at the far end of the colour map.
        label_set: label set of the semantic output when written without a module (inside
            ``predict`` it follows the semantic head).
        split: split name in the panoptic file names (default: the data module's
            ``predict_split``, else "val").
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
        split: str | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.pictures = pictures
        self.benchmark = benchmark
        self.benchmark_size = tuple(benchmark_size) if benchmark_size else None
        self.metric_depth = metric_depth
        self.max_depth = max_depth
        self.label_set = label_set
        self.split = split or "val"
        self._split_option = split
        self._sources = {"semantic": "semantic", "depth": "depth"}
        self.num_written = 0  # files written (a count: the writer keeps no paths or arrays)

    @property
    def panoptic_dir(self) -> Path:
        """The folder of per-image panoptic PNGs (its JSON is this path + ``.json``)."""
        return self.output_dir / "cityscapes" / "panoptic" / panoptic_name(self.split)

    def on_predict_start(self, trainer, pl_module) -> None:
        heads = getattr(pl_module, "heads", {})
        by_kind = {getattr(head, "output_kind", None): name for name, head in heads.items()}
        semantic = by_kind.get(HeadKind.CLASS_LOGITS_TRAINID)
        if semantic is None and HeadKind.CLASS_LOGITS_CATEGORY in by_kind:
            semantic, self.label_set = by_kind[HeadKind.CLASS_LOGITS_CATEGORY], "category"
        self._sources = {"semantic": semantic, "depth": by_kind.get(HeadKind.DISPARITY)}
        if self._split_option is None:
            self.split = getattr(trainer.datamodule, "predict_split", None) or "val"
        if trainer.is_global_zero and self.panoptic_dir.is_dir():
            # Annotations of an earlier run would otherwise be merged into this run's JSON.
            for stale in self.panoptic_dir.glob(f"*{ANNOTATION_SUFFIX}"):
                stale.unlink()
        trainer.strategy.barrier()

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()  # every rank has written its images
        if trainer.is_global_zero and self.benchmark and self.panoptic_dir.is_dir():
            merge_panoptic_results(self.panoptic_dir)

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
        self._legend: list[int] | None = None  # classes shown: set with the semantic picture
        # (file suffix, panel title, picture) for every output of this image.
        pictures: list[tuple[str, str, np.ndarray]] = []
        semantic_name, depth_name = self._sources["semantic"], self._sources["depth"]
        if semantic_name in outputs:
            semantic = outputs[semantic_name][index].cpu().numpy().astype(np.uint8)
            pictures.append(("semantic", "semantic", colorize_semantic(semantic, self.label_set)))
            truth = _truth(batch, "semantic", index)
            self._legend = classes_present(
                semantic, *([] if truth is None else [truth]), label_set=self.label_set
            )
            if truth is not None and (truth != 255).any():
                # Suffix "": ground truth goes in the panel only, beside its prediction.
                pictures.append(("", "ground truth", colorize_semantic(truth, self.label_set)))
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
            truth = _truth(batch, "instance_ids", index)
            if truth is not None and (truth >= 1000).any():  # labelId * 1000 + k: instances
                truth = np.where(truth >= 1000, truth, 0)
                pictures.append(("", "ground truth", overlay_instances(image, truth)))
            if self.benchmark:
                masks = instances["masks"].cpu().numpy().astype(bool)
                write_instance_result(
                    self.output_dir / "cityscapes" / "instance",
                    stem,
                    np.stack([self._benchmark_resize(m) for m in masks]) if len(masks) else masks,
                    instances["labels"].cpu().numpy(),
                    instances["scores"].cpu().numpy(),
                )
        if "panoptic" in outputs:
            category = outputs["panoptic"]["category"][index].cpu().numpy()
            instance = outputs["panoptic"]["instance"][index].cpu().numpy()
            pictures.append(("panoptic", "panoptic", colorize_panoptic(category, instance)))
            if self.benchmark:
                write_panoptic_result(
                    self.panoptic_dir,
                    stem,
                    self._benchmark_resize(category),
                    self._benchmark_resize(instance),
                )
        if depth_name in outputs:
            disparity = outputs[depth_name][index].float().cpu().clamp_min(0).numpy()
            if self.metric_depth and "depth_scale" in batch:
                valid = disparity > 1e-3
                depth = np.where(
                    valid, float(batch["depth_scale"][index]) / np.maximum(disparity, 1e-3), 0
                )
                # Reversed map so that near is bright, as in the disparity pictures.
                picture = with_colorbar(depth, valid, self.max_depth, "depth [m]", "magma_r")
                pictures.append(("depth", "depth [m]", picture))
            else:
                truth = _truth(batch, "disparity", index)
                mask = _truth(batch, "disparity_mask", index)
                # One scale for prediction and ground truth, so colours compare.
                reference, where = (disparity, None) if truth is None else (truth, mask)
                vmax = high_percentile(reference, where)
                label = "disparity [px]"
                pictures.append(("depth", label, with_colorbar(disparity, None, vmax, label)))
                if truth is not None and mask is not None and mask.any():
                    pictures.append(("", "ground truth", with_colorbar(truth, mask, vmax, label)))
        for task, sigma_maps in outputs.get("sigma", {}).items():
            sigma = sigma_maps[index].float().cpu().numpy()
            raw = self.output_dir / "uncertainty" / f"{stem}_{task}_sigma.npy"
            raw.parent.mkdir(parents=True, exist_ok=True)
            np.save(raw, sigma.astype(np.float32))
            self.num_written += 1
            # Kept at the map's size, as the raw .npy beside it.
            sigma_picture = with_colorbar(sigma, cmap="viridis", min_width=0)
            pictures.append((f"{task}_sigma", f"{task} sigma", sigma_picture))
        for task, maps in outputs.get("epistemic", {}).items():
            for kind, values in maps.items():
                array = values[index].float().cpu().numpy().astype(np.float32)
                raw = self.output_dir / "uncertainty" / f"{stem}_{task}_{kind}.npy"
                raw.parent.mkdir(parents=True, exist_ok=True)
                np.save(raw, array)
                self.num_written += 1
                if kind in EPISTEMIC_TITLES:  # the total is the sigma and this one summed
                    title = f"{task} {EPISTEMIC_TITLES[kind]}"
                    picture = with_colorbar(array, cmap="viridis", min_width=0)
                    pictures.append((f"{task}_{kind}", title, picture))
        if not self.pictures:
            return
        folder = self.output_dir / "pictures"
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, _, picture in pictures:
            if not suffix:
                continue  # ground truth: in the panel only
            path = folder / f"{stem}_{suffix}.png"
            Image.fromarray(picture).save(path)
            self.num_written += 1
        panel_path = folder / f"{stem}_panel.png"
        Image.fromarray(self._panel(image, pictures)).save(panel_path)
        self.num_written += 1

    def _panel(self, image: np.ndarray, pictures: list[tuple[str, str, np.ndarray]]) -> np.ndarray:
        tiles, legend = self.panel_tiles(image, pictures)
        return titled_grid(tiles, legend, self.label_set)

    def panel_tiles(
        self, image: np.ndarray, pictures: list[tuple[str, str, np.ndarray]]
    ) -> tuple[list[tuple[str, np.ndarray]], list[int] | None]:
        """The panel's (title, tile) pairs, two per row, and the classes its legend strip
        explains (None when the legend is a tile already).

        Tiles are enlarged; each prediction sits beside its ground truth; pictures without
        one come first in pairs, and the class legend fills a row they leave half empty.
        """
        singles: list[tuple[str, np.ndarray]] = [("input", enlarge(image))]
        pairs: list[tuple[str, np.ndarray]] = []
        for position, (suffix, title, picture) in enumerate(pictures):
            has_truth = position + 1 < len(pictures) and not pictures[position + 1][0]
            if not suffix:
                pairs.append((f"{pictures[position - 1][1]}: {title}", enlarge(picture)))
            elif has_truth:
                pairs.append((f"{title}: prediction", enlarge(picture)))
            else:
                singles.append((title, enlarge(picture)))
        legend = self._legend
        if legend is not None and len(singles) % 2:
            width = max(tile.shape[1] for _, tile in singles + pairs)
            singles.append(("classes", class_legend(legend, self.label_set, width)))
            legend = None
        return singles + pairs, legend

    def _benchmark_resize(self, array: np.ndarray) -> np.ndarray:
        if self.benchmark_size is None:
            return array
        return resize_nearest(array, self.benchmark_size)


def _truth(batch: dict, key: str, index: int) -> np.ndarray | None:
    """The ground truth ``key`` of one image when the batch has it (labelled splits)."""
    value = batch.get(key)
    return None if value is None else value[index].cpu().numpy()
