"""Result files in the official CityScapes benchmark format, and the official evaluations.

The writers produce exactly what cityscapesscripts' ``csEvalPixelLevelSemanticLabeling`` and
``csEvalInstanceLevelSemanticLabeling`` (and the benchmark server) look for:

- pixel level: one single-channel PNG of labelIds per image, found recursively under the result
  folder by the pattern ``{city}_{seq}_{frame}*.png``; written as ``{stem}_pred_labelIds.png``.
- instance level: one text file per image, found by ``{city}_{seq}_{frame}*.txt``, with lines
  ``relative/path/to/mask.png labelId confidence``; written as ``{stem}_pred_instances.txt``
  with its binary masks in ``masks/{stem}/NNN.png``. The mask file names do not start with the
  stem, so semantic and instance results may share one folder without the pixel-level search
  finding "multiple predictions" for an image.

The ``evaluate_*`` helpers run the official code in-process on such folders. They work around
the scripts' global state and side effects (see `_official_run`), so nothing is read from
the ``CITYSCAPES_*`` environment variables and nothing is written outside a temporary folder.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from mtlscene.data.cityscapes.encoding import decode_disparity
from mtlscene.data.cityscapes.labels import IGNORE_INDEX, INSTANCE_TRAIN_IDS, train_id_to_label_id
from mtlscene.data.cityscapes.layout import IMAGE_SUFFIX, sample_files
from mtlscene.data.io import read_camera, read_png

SEMANTIC_SUFFIX = "_pred_labelIds.png"
INSTANCE_SUFFIX = "_pred_instances.txt"
MASK_FOLDER = "masks"


def _check_stem(stem: str) -> None:
    # The official scripts split result lines at spaces and match files by name prefix.
    if not stem or any(char in stem for char in " /\\"):
        raise ValueError(
            f"stem {stem!r} must be a CityScapes image name such as 'aachen_000000_000019' "
            "(no spaces or path separators)"
        )


def write_semantic_result(
    out_dir: str | os.PathLike,
    stem: str,
    train_ids: np.ndarray,
    label_set: str = "trainid",
) -> Path:
    """Write a predicted class map as an official labelIds PNG.

    Args:
        out_dir: Result folder (created if missing).
        stem: CityScapes image name, e.g. "aachen_000000_000019".
        train_ids: HxW predicted class indices of ``label_set``; 255 is written as labelId 0
            (unlabeled), which the official evaluation counts as a miss.
        label_set: "trainid" or "category" (a category is written as its first labelId).

    Returns:
        Path of the written PNG.
    """
    _check_stem(stem)
    ids = np.asarray(train_ids)
    if ids.ndim != 2:
        raise ValueError(f"train_ids of {stem} must be HxW, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > IGNORE_INDEX):
        raise ValueError(f"train_ids of {stem} must lie in 0..255, got {ids.min()}..{ids.max()}")
    label_ids = train_id_to_label_id(label_set)[ids.astype(np.int64)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}{SEMANTIC_SUFFIX}"
    Image.fromarray(label_ids.astype(np.uint8)).save(path)
    return path


def write_instance_result(
    out_dir: str | os.PathLike,
    stem: str,
    masks: np.ndarray,
    train_ids: np.ndarray,
    scores: np.ndarray,
) -> Path:
    """Write predicted instances as an official result text file with binary mask PNGs.

    Args:
        out_dir: Result folder (created if missing).
        stem: CityScapes image name, e.g. "aachen_000000_000019".
        masks: NxHxW bool masks of the predicted instances (N may be 0).
        train_ids: N trainIds of the instances; each must be a "thing" class (11..18).
        scores: N confidences; the ranking of the AP computation.

    Returns:
        Path of the written text file (written even when N == 0, as the evaluation requires a
        file for every image). Empty masks are skipped, as the official evaluation would.
    """
    _check_stem(stem)
    masks = np.asarray(masks).astype(bool)
    train_ids = np.asarray(train_ids).reshape(-1).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 3 or not len(masks) == len(train_ids) == len(scores):
        raise ValueError(
            f"instances of {stem}: masks must be NxHxW with N train_ids and N scores, got "
            f"{masks.shape}, {train_ids.shape}, {scores.shape}"
        )
    not_things = sorted(set(train_ids.tolist()) - set(INSTANCE_TRAIN_IDS))
    if not_things:
        raise ValueError(
            f"instances of {stem} have trainIds {not_things}, which are not instance classes "
            f"{INSTANCE_TRAIN_IDS}: keep only instances of 'thing' classes"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"instance scores of {stem} must be finite")
    label_ids = train_id_to_label_id("trainid")[train_ids]
    out = Path(out_dir)
    mask_dir = out / MASK_FOLDER / stem
    mask_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (mask, label_id, score) in enumerate(zip(masks, label_ids, scores, strict=True)):
        if not mask.any():
            continue
        mask_path = mask_dir / f"{index:03d}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
        lines.append(f"{MASK_FOLDER}/{stem}/{mask_path.name} {int(label_id)} {score:.6f}\n")
    path = out / f"{stem}{INSTANCE_SUFFIX}"
    path.write_text("".join(lines))
    return path


class _NumpyWithIn1d:
    """numpy with ``in1d`` restored (removed in numpy 2.4, still called by cityscapesscripts)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def in1d(ar1: Any, ar2: Any, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
        return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """``contextlib.chdir`` for Python 3.10."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _write_json(data: Any, file_name: str) -> None:
    """The scripts' ``writeDict2JSON``, able to write numpy scalars (numpy 2 returns them)."""

    def default(value: Any) -> Any:
        return value.item() if isinstance(value, np.generic) else value.__dict__

    with open(file_name, "w") as file:
        json.dump(data, file, default=default, sort_keys=True, indent=4)


@contextlib.contextmanager
def _official_run(
    module: ModuleType, work_dir: Path, extra_patches: dict[str, Any] | None = None
) -> Iterator[io.StringIO]:
    """Run official evaluation code quietly inside ``work_dir`` and turn its exits into errors.

    The scripts print progress to stdout and end with ``sys.exit(-1)`` on any error (after
    printing the reason); the instance-level one always writes ``matches.json`` into the current
    directory. Under numpy 2 they also fail by themselves: ``np.in1d`` is gone (numpy 2.4) and
    ``writeDict2JSON`` cannot encode the numpy integers that ``np.count_nonzero`` now returns.
    This captures the output, raises a RuntimeError with the printed reason, changes into
    ``work_dir``, and for the duration gives the module an ``np`` with ``in1d``, a
    numpy-aware ``writeDict2JSON`` (where it has one) and the module attributes given in
    ``extra_patches``.
    """
    output = io.StringIO()
    patches: dict[str, Any] = {}
    if hasattr(module, "writeDict2JSON"):
        patches["writeDict2JSON"] = _write_json
    if not hasattr(np, "in1d"):
        patches["np"] = _NumpyWithIn1d()
    patches.update(extra_patches or {})
    originals = {name: getattr(module, name) for name in patches}
    for name, value in patches.items():
        setattr(module, name, value)
    try:
        with _working_directory(work_dir), contextlib.redirect_stdout(output):
            yield output
    except SystemExit as error:
        message = output.getvalue().strip().splitlines()
        reason = message[-1] if message else f"exit status {error.code}"
        raise RuntimeError(
            f"official CityScapes evaluation ({module.__name__}) failed: {reason}"
        ) from None
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


def _fresh_args(module: ModuleType, prediction_dir: Path, search: str) -> Any:
    """A private copy of the module's global ``args``, pointed at explicit folders."""
    args = copy.copy(module.args)  # never mutate the global: it caches the prediction walk
    args.predictionPath = str(prediction_dir.resolve())
    args.predictionWalk = None
    args.groundTruthSearch = search
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    return args


def _ground_truth_files(
    gt_root: str | os.PathLike, split: str, suffix: str, stems: Collection[str] | None = None
) -> list[str]:
    root = Path(gt_root).resolve()
    files = sorted(str(path) for path in (root / "gtFine" / split).glob(f"*/*{suffix}"))
    if not files:
        raise FileNotFoundError(
            f"no ground truth {root}/gtFine/{split}/*/*{suffix}: pass the CityScapes root "
            "(the folder that holds gtFine/) and an existing split"
        )
    if stems is not None:
        wanted = set(stems)
        files = [file for file in files if Path(file).name[: -len(suffix)] in wanted]
        found = {Path(file).name[: -len(suffix)] for file in files}
        if wanted - found:
            raise FileNotFoundError(
                f"no ground truth {root}/gtFine/{split}/<city>/<stem>{suffix} for the stems "
                f"{sorted(wanted - found)[:5]}"
            )
    return files


def evaluate_pixel_level(
    gt_root: str | os.PathLike,
    split: str,
    pred_dir: str | os.PathLike,
    instance_level: bool = False,
    stems: Collection[str] | None = None,
) -> dict[str, Any]:
    """Run cityscapesscripts' official pixel-level evaluation on a folder of labelIds PNGs.

    Every ``{gt_root}/gtFine/{split}/*/*_gtFine_labelIds.png`` (or those of ``stems``) must have
    exactly one prediction under ``pred_dir`` (recursively, by the official file-name pattern)
    of the same size. Pixel accuracy is not taken from the script (its ``evalPixelAccuracy``
    counts are inverted), use ``SemanticSegmentationMetrics`` for it.

    Args:
        gt_root: CityScapes root folder holding ``gtFine/``.
        split: "train", "val" or "test".
        pred_dir: Folder of ``write_semantic_result`` files.
        instance_level: also compute the instance-weighted iIoU, which reads
            ``*_gtFine_instanceIds.png``. Its class-size weights are fixed for 2048x1024
            images, so it is comparable to published numbers only at that resolution.
        stems: evaluate only these frames (default: every frame of the split).

    Returns:
        ``miou`` (mean class IoU over the 19 evaluated classes with a defined IoU), ``iou``
        (class name -> IoU, nan where undefined), ``category_miou``, ``category_iou`` and
        ``confusion_matrix`` (34x34 over labelIds, rows ground truth); with
        ``instance_level`` also ``imiou`` and ``iiou`` (the 8 instance classes) and
        ``category_imiou`` and ``category_iiou`` (human and vehicle).
    """
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
    from cityscapesscripts.helpers.labels import labels

    gt_files = _ground_truth_files(gt_root, split, "_gtFine_labelIds.png", stems)
    args = _fresh_args(official, Path(pred_dir), str(Path(gt_root) / "gtFine" / split))
    args.evalInstLevelScore = instance_level
    args.evalPixelAccuracy = False
    with tempfile.TemporaryDirectory() as work_dir, _official_run(official, Path(work_dir)):
        predictions = [official.getPrediction(args, gt) for gt in gt_files]
        result = official.evaluateImgLists(predictions, gt_files, args)
    evaluated = {lab.name for lab in labels if not lab.ignoreInEval and lab.id >= 0}
    class_iou = {n: float(v) for n, v in result["classScores"].items() if n in evaluated}
    category_iou = {n: float(v) for n, v in result["categoryScores"].items() if not math.isnan(v)}
    scores = {
        "miou": float(result["averageScoreClasses"]),
        "iou": class_iou,
        "category_miou": float(result["averageScoreCategories"]),
        "category_iou": category_iou,
        "confusion_matrix": np.asarray(result["confMatrix"], dtype=np.int64),
    }
    if instance_level:
        # Only classes and categories that have instances get an iIoU (others are nan).
        inst = {n: float(v) for n, v in result["classInstScores"].items() if n in evaluated}
        scores["iiou"] = {n: v for n, v in inst.items() if not math.isnan(v)}
        scores["imiou"] = float(result["averageScoreInstClasses"])
        categories = result["categoryInstScores"].items()
        scores["category_iiou"] = {n: float(v) for n, v in categories if not math.isnan(v)}
        scores["category_imiou"] = float(result["averageScoreInstCategories"])
    return scores


def evaluate_instance_level(
    gt_root: str | os.PathLike,
    split: str,
    pred_dir: str | os.PathLike,
    distances: bool = False,
    stems: Collection[str] | None = None,
) -> dict[str, Any]:
    """Run cityscapesscripts' official instance-level evaluation (mask AP) on a result folder.

    Every ``{gt_root}/gtFine/{split}/*/*_gtFine_instanceIds.png`` must have exactly one
    ``write_instance_result`` text file under ``pred_dir``. The official rules apply unchanged:
    ground-truth instances under 100 pixels are ignored (predictions on them are not counted as
    false positives), which at reduced resolutions removes many small objects. The ground-truth
    cache that the script keeps (``gtInstances.json``) is built afresh in a temporary folder.

    With ``distances`` the script's distance-limited APs are computed too (AP 100m, AP 50m:
    only ground-truth instances within that distance and of at least 1000 pixels count).
    The public script has the thresholds but no distances (its server adds them), so each
    ground-truth instance gets them here from the CityScapes files: its median metric depth
    ``baseline * fx / disparity`` over its pixels with a valid disparity
    (``{gt_root}/disparity/{split}/...``, ``{gt_root}/camera/{split}/...``) and, as the
    "stereo density" the script requires to be at least 0.5, the share of its pixels that
    have one.

    Args:
        gt_root: CityScapes root folder holding ``gtFine/`` (and with ``distances`` also
            ``disparity/`` and ``camera/``).
        split: "train", "val" or "test".
        pred_dir: Folder of ``write_instance_result`` files.
        distances: also compute ``ap100m``, ``ap50m`` and ``ap50_50m``.
        stems: evaluate only these frames (default: every frame of the split).

    Returns:
        ``ap`` (AP averaged over IoU thresholds 0.5:0.95 and classes), ``ap50`` (at IoU 0.5),
        ``class_ap`` and ``class_ap50`` (class name -> value, nan for classes with no ground
        truth and no prediction); with ``distances`` also ``ap100m``, ``ap50m`` and
        ``ap50_50m`` (AP at IoU 0.5 within 50 m).
    """
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as official
    from cityscapesscripts.evaluation.instances2dict import instances2dict

    gt_files = _ground_truth_files(gt_root, split, "_gtFine_instanceIds.png", stems)
    args = _fresh_args(official, Path(pred_dir), str(Path(gt_root) / "gtFine" / split))
    args.distanceAvailable = distances
    args.csv = False
    with tempfile.TemporaryDirectory() as work_dir, _official_run(official, Path(work_dir)):
        args.gtInstancesFile = str(Path(work_dir) / "gtInstances.json")
        if distances:
            # The script reads this cache instead of building one without distances.
            instances = instances2dict(gt_files)
            for gt_file in gt_files:
                _add_distances(instances[os.path.abspath(gt_file)], Path(gt_file), split)
            _write_json(instances, args.gtInstancesFile)
        predictions = [official.getPrediction(gt, args) for gt in gt_files]
        result = official.evaluateImgLists(predictions, gt_files, args)
    averages = result["averages"]
    scores = {
        "ap": float(averages["allAp"]),
        "ap50": float(averages["allAp50%"]),
        "class_ap": {name: float(v["ap"]) for name, v in averages["classes"].items()},
        "class_ap50": {name: float(v["ap50%"]) for name, v in averages["classes"].items()},
    }
    if distances:
        scores["ap100m"] = float(averages["allAp100m"])
        scores["ap50m"] = float(averages["allAp50m"])
        scores["ap50_50m"] = float(averages["allAp50%50m"])
    return scores


def _add_distances(instances: dict[str, list[dict]], gt_file: Path, split: str) -> None:
    """Set ``medDist`` (metres) and ``distConf`` of every ground-truth instance of one frame."""
    stem = gt_file.name[: -len("_gtFine_instanceIds.png")]
    root = gt_file.parents[3]
    city = gt_file.parent.name
    files = sample_files(root, split, root / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}")
    instance_ids = read_png(gt_file).astype(np.int64)
    disparity, valid = decode_disparity(read_png(files.disparity))
    if disparity.shape != instance_ids.shape:
        raise ValueError(
            f"{files.disparity} is {disparity.shape}, but {gt_file} is {instance_ids.shape}: "
            "distances need both at the original resolution"
        )
    camera = read_camera(files.camera)
    focal_baseline = float(camera["extrinsic"]["baseline"]) * float(camera["intrinsic"]["fx"])
    for per_label in instances.values():
        for instance in per_label:
            mask = instance_ids == instance["instID"]
            measured = valid & mask & (disparity > 0)
            count = int(mask.sum())
            instance["distConf"] = float(measured.sum()) / count if count else 0.0
            if measured.any():
                instance["medDist"] = float(np.median(focal_baseline / disparity[measured]))
