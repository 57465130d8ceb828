"""Panoptic results in the official CityScapes (COCO panoptic) format, and its evaluation.

Format, as cityscapesscripts' ``createPanopticImgs`` writes the ground truth and
``evalPanopticSemanticLabeling`` reads both:

- one RGB PNG per image whose colour encodes a segment id, ``id = R + 256 G + 256**2 B``
  (0 is void); our ids follow the ground truth's: ``labelId * 1000 + k`` for the k-th
  instance of a thing class, the plain labelId for a stuff class;
- one JSON for the whole split with ``images``, ``categories`` and ``annotations`` (per
  image: ``image_id`` = the CityScapes stem, ``file_name`` of the PNG, ``segments_info`` with
  each segment's ``id``, ``category_id`` (labelId), ``area``, ``bbox`` and ``iscrowd``).
  Its segment folder is the JSON's path without ``.json``.

Predictions are streamed: `write_panoptic_result` writes each image's PNG and its
annotation (``{stem}_panoptic.json``) at once, and `merge_panoptic_results` assembles
the split's JSON from those files at the end, so no annotation is kept in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtlscene.data.cityscapes.labels import IGNORE_INDEX, INSTANCE_TRAIN_IDS, train_id_to_label_id
from mtlscene.evaluation.cityscapes_format import _check_stem, _official_run

PANOPTIC_SUFFIX = "_panoptic.png"
ANNOTATION_SUFFIX = "_panoptic.json"


def panoptic_name(split: str) -> str:
    """Base name of a split's panoptic JSON and segment folder (``cityscapes_panoptic_val``)."""
    return f"cityscapes_panoptic_{split}"


def official_categories() -> list[dict[str, Any]]:
    """The ``categories`` entry of ``createPanopticImgs`` (labelIds of the evaluated classes)."""
    from cityscapesscripts.helpers.labels import labels

    return [
        {
            "id": int(label.id),
            "name": label.name,
            "color": list(label.color),
            "supercategory": label.category,
            "isthing": 1 if label.hasInstances else 0,
        }
        for label in labels
        if not label.ignoreInEval
    ]


def panoptic_segment_ids(category: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Official segment ids (int32 HxW, 0 void) from trainIds (255 void) and instance ids."""
    category = np.asarray(category).astype(np.int64)
    instance = np.asarray(instance).astype(np.int64)
    if category.shape != instance.shape or category.ndim != 2:
        raise ValueError(
            f"category and instance must both be HxW, got {category.shape} and {instance.shape}"
        )
    thing = np.isin(category, INSTANCE_TRAIN_IDS)
    if (instance[thing] < 1).any() or (instance[thing] > 999).any():
        raise ValueError("thing segments need instance ids in 1..999 (labelId * 1000 + id)")
    label = train_id_to_label_id("trainid")[np.clip(category, 0, IGNORE_INDEX)].astype(np.int64)
    ids = np.where(thing, label * 1000 + instance, label)
    return np.where(category == IGNORE_INDEX, 0, ids).astype(np.int32)


def write_panoptic_result(
    out_dir: str | os.PathLike, stem: str, category: np.ndarray, instance: np.ndarray
) -> Path:
    """Write one image's panoptic PNG and its annotation JSON into ``out_dir``.

    Args:
        out_dir: the split's segment folder, e.g. ``results/cityscapes_panoptic_val``.
        stem: CityScapes image name, e.g. "aachen_000000_000019" (the ``image_id``).
        category: HxW predicted trainIds, 255 for void.
        instance: HxW instance ids (1..999 on thing pixels, ignored elsewhere).

    Returns:
        Path of the PNG.
    """
    _check_stem(stem)
    ids = panoptic_segment_ids(category, instance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    png = out / f"{stem}{PANOPTIC_SUFFIX}"
    Image.fromarray(rgb).save(png)
    segments = []
    for segment_id in np.unique(ids[ids != 0]).tolist():
        rows, cols = np.nonzero(ids == segment_id)
        x, y = int(cols.min()), int(rows.min())
        segments.append(
            {
                "id": int(segment_id),
                "category_id": int(segment_id // 1000 if segment_id >= 1000 else segment_id),
                "area": len(rows),
                "bbox": [x, y, int(cols.max()) - x + 1, int(rows.max()) - y + 1],
                "iscrowd": 0,
            }
        )
    annotation = {
        "image_id": stem,
        "file_name": png.name,
        "segments_info": segments,
        "width": int(ids.shape[1]),
        "height": int(ids.shape[0]),
    }
    (out / f"{stem}{ANNOTATION_SUFFIX}").write_text(json.dumps(annotation))
    return png


def merge_panoptic_results(segment_dir: str | os.PathLike) -> Path:
    """Assemble the split's COCO panoptic JSON (``{segment_dir}.json``) from the per-image files.

    Returns:
        Path of the written JSON.
    """
    folder = Path(segment_dir)
    annotations, images = [], []
    for path in sorted(folder.glob(f"*{ANNOTATION_SUFFIX}")):
        annotation = json.loads(path.read_text())
        width, height = annotation.pop("width"), annotation.pop("height")
        stem = annotation["image_id"]
        images.append(
            {"id": stem, "width": width, "height": height, "file_name": f"{stem}_leftImg8bit.png"}
        )
        annotations.append(annotation)
    target = folder.with_name(f"{folder.name}.json")
    data = {"images": images, "annotations": annotations, "categories": official_categories()}
    target.write_text(json.dumps(data, indent=1))
    return target


def prepare_panoptic_ground_truth(
    root: str | os.PathLike, splits: list[str], output_dir: str | os.PathLike | None = None
) -> list[Path]:
    """Convert ``gtFine/{split}/*/*_instanceIds.png`` to the official panoptic ground truth.

    This is cityscapesscripts' own ``createPanopticImgs`` conversion, unchanged (labelIds as
    category ids, void labels dropped, groups of a thing class as crowd segments): it reads
    only the instanceIds files, so it serves real and synthetic roots alike.

    Args:
        root: CityScapes root holding ``gtFine/``.
        splits: the splits to convert.
        output_dir: where ``cityscapes_panoptic_{split}.json`` and its folder go (default
            ``{root}/gtFine``, where the official evaluator looks).

    Returns:
        The written JSON files.
    """
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    gt_fine = Path(root) / "gtFine"
    for split in splits:
        if not any((gt_fine / split).glob("*/*_instanceIds.png")):
            raise FileNotFoundError(
                f"no ground truth {gt_fine}/{split}/*/*_instanceIds.png: pass the CityScapes "
                "root (the folder that holds gtFine/) and an existing split"
            )
    out = Path(output_dir) if output_dir is not None else gt_fine
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # per-file progress lines
        convert2panoptic(str(gt_fine), str(out), False, list(splits))
    return [out / f"{panoptic_name(split)}.json" for split in splits]


def evaluate_panoptic(
    gt_root: str | os.PathLike, split: str, prediction_json: str | os.PathLike
) -> dict[str, Any]:
    """Run cityscapesscripts' official ``evaluatePanoptic`` on a prediction JSON and folder.

    The ground truth is ``{gt_root}/gtFine/cityscapes_panoptic_{split}.json`` (with its
    folder) when present, else it is converted into a temporary folder first. The official
    counting runs unchanged but on one core (the script would start a process per CPU).

    Args:
        gt_root: CityScapes root holding ``gtFine/``.
        split: the split the predictions cover.
        prediction_json: the predictions' JSON; its segment folder is the path without .json.

    Returns:
        ``pq``, ``sq``, ``rq`` (all classes), the same with ``_things`` and ``_stuff``, and
        ``per_class`` (class name -> {pq, sq, rq}); averages over no class are nan.
    """
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as official
    from cityscapesscripts.helpers.labels import id2label

    prediction_json = Path(prediction_json).resolve()
    with tempfile.TemporaryDirectory() as work_dir:
        gt_json = Path(gt_root).resolve() / "gtFine" / f"{panoptic_name(split)}.json"
        if not gt_json.is_file():
            gt_json = prepare_panoptic_ground_truth(gt_root, [split], work_dir)[0]

        def single_core(matched, gt_folder, pred_folder, categories):
            return official.pq_compute_single_core(0, matched, gt_folder, pred_folder, categories)

        def average(pq_stat, categories):
            results = {}
            for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
                try:
                    results[name], per_class = pq_stat.pq_average(categories, isthing=isthing)
                except ZeroDivisionError:  # no class of this group in ground truth or prediction
                    results[name], per_class = {"pq": math.nan, "sq": math.nan, "rq": math.nan}, {}
                if name == "All":
                    results["per_class"] = per_class
            return results

        patches = {"pq_compute_multi_core": single_core, "average_pq": average}
        with _official_run(official, Path(work_dir), patches):
            result = official.evaluatePanoptic(
                str(gt_json),
                str(gt_json.with_suffix("")),
                str(prediction_json),
                str(prediction_json.with_suffix("")),
                str(Path(work_dir) / "resultPanopticSemanticLabeling.json"),
            )
    summary: dict[str, Any] = {}
    for group, suffix in (("All", ""), ("Things", "_things"), ("Stuff", "_stuff")):
        for key in ("pq", "sq", "rq"):
            summary[f"{key}{suffix}"] = float(result[group][key])
    summary["per_class"] = {
        id2label[int(label)].name: {k: float(v) for k, v in values.items()}
        for label, values in result["per_class"].items()
    }
    return summary
