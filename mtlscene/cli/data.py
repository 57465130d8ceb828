"""``mtlscene-data``: check a dataset root (CityScapes, NYUv2 or your own folder), prepare a
CityScapes cache, generate synthetic CityScapes-format data, or prepare the panoptic ground truth.

Exit status: 0 fine, 1 problems found in the data, 2 bad command line or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtlscene-data`` command line and return its exit status.

    Args:
        argv: arguments without the program name; None reads ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and usage errors (2) return instead of exiting
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the ``check``, ``prepare``, ``generate`` and ``panoptic``
    subcommands."""
    parser = argparse.ArgumentParser(
        prog="mtlscene-data",
        description="Check a dataset root (CityScapes, NYUv2 or your own folder), prepare a "
        "CityScapes cache, or generate synthetic CityScapes data.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="decode every file of a dataset root and report all problems",
        description="Decode every file of a dataset root (CityScapes; NYUv2 in the mtan "
        "layout, a ROOT with train/image/0.npy; or a folder dataset: a ROOT with "
        "dataset.yaml) and report all problems at once (exit status 1 when there are any).",
    )
    check.add_argument(
        "root",
        type=Path,
        metavar="ROOT",
        help="folder with leftImg8bit/, gtFine/, disparity/, camera/ (CityScapes), or with "
        "dataset.yaml, images/ and the target folders (your own data)",
    )
    check.add_argument(
        "--splits",
        nargs="+",
        default=None,
        metavar="SPLIT",
        help="splits to check (default: train val test; NYUv2: train val; a folder dataset: "
        "those its dataset.yaml names)",
    )
    check.add_argument(
        "--max-per-kind",
        type=_non_negative_int,
        default=20,
        metavar="N",
        help="list at most N problems of each kind, 0 for all (default: 20)",
    )
    check.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="check ROOT as this dataset (cityscapes, nyuv2 or folder) instead of the one "
        "its layout shows",
    )
    check.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    check.set_defaults(handler=_run_check)

    prepare = commands.add_parser(
        "prepare",
        help="decode, check and resize each split once into a cache the loaders read",
        description="Decode, check and resize every frame of each split once into a "
        "memory-mapped cache at the working size (data.cache_dir, default "
        "ROOT/mtlscene_cache). Training, validation and test then read it instead of the "
        "PNGs, with identical samples. A cache that is up to date is skipped; one whose "
        "source files or settings changed is rebuilt.",
    )
    prepare.add_argument(
        "root",
        type=Path,
        metavar="ROOT",
        help="folder with leftImg8bit/, gtFine/, disparity/, camera/",
    )
    prepare.add_argument(
        "--size",
        nargs=2,
        type=_positive_int,
        default=[128, 256],
        metavar=("H", "W"),
        help="working size, as data.size (default: 128 256)",
    )
    prepare.add_argument(
        "--splits",
        nargs="+",
        default=None,
        metavar="SPLIT",
        help="splits to prepare (default: those of train, val, test that have images)",
    )
    prepare.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where caches live, as data.cache_dir (default: ROOT/mtlscene_cache)",
    )
    prepare.add_argument(
        "--workers",
        type=_non_negative_int,
        default=min(8, os.cpu_count() or 1),
        metavar="N",
        help="processes decoding frames in parallel (default: the CPU count, at most 8)",
    )
    prepare.add_argument(
        "--force", action="store_true", help="rebuild even caches that are up to date"
    )
    prepare.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    prepare.set_defaults(handler=_run_prepare)

    generate = commands.add_parser(
        "generate",
        help="write procedural street scenes in the CityScapes layout",
        description="Write procedural street scenes in the exact CityScapes layout; skipped "
        "when ROOT already holds a complete dataset made with the same settings.",
    )
    generate.add_argument(
        "root", type=Path, metavar="ROOT", help="output folder (created if needed)"
    )
    for split, default in (("train", 64), ("val", 16), ("test", 16)):
        generate.add_argument(
            f"--{split}",
            type=_non_negative_int,
            default=default,
            metavar="N",
            help=f"{split} images (default: {default})",
        )
    generate.add_argument(
        "--height", type=_positive_int, default=128, metavar="H", help="image rows (default: 128)"
    )
    generate.add_argument(
        "--width", type=_positive_int, default=256, metavar="W", help="image columns (default: 256)"
    )
    generate.add_argument(
        "--seed", type=_non_negative_int, default=0, metavar="S", help="base seed (default: 0)"
    )
    generate.add_argument(
        "--force",
        action="store_true",
        help="regenerate even when a complete dataset is already there",
    )
    generate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    generate.set_defaults(handler=_run_generate)

    panoptic = commands.add_parser(
        "panoptic",
        help="write the panoptic ground truth (COCO panoptic format) from the instanceIds",
        description="Convert gtFine/SPLIT/*/*_instanceIds.png into the official panoptic "
        "ground truth, gtFine/cityscapes_panoptic_SPLIT.json and its PNG folder, with "
        "cityscapesscripts' createPanopticImgs (works for real and synthetic roots).",
    )
    panoptic.add_argument(
        "root", type=Path, metavar="ROOT", help="folder with gtFine/ (CityScapes or synthetic)"
    )
    panoptic.add_argument(
        "--splits",
        nargs="+",
        default=["val"],
        metavar="SPLIT",
        help="splits to convert (default: val)",
    )
    panoptic.set_defaults(handler=_run_panoptic)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    from mtlscene.data.checkers import checker_for

    try:
        checker = checker_for(args.root, args.dataset)
    except ValueError as error:
        print(f"mtlscene-data check: error: --dataset: {error}", file=sys.stderr)
        return EXIT_USAGE
    report = checker.report(args.splits, progress=not args.no_progress)
    print(report.format(max_per_kind=args.max_per_kind or None))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _run_prepare(args: argparse.Namespace) -> int:
    from mtlscene.data.cityscapes import cache
    from mtlscene.data.cityscapes.layout import has_images
    from mtlscene.data.io import DatasetFileError

    root = args.root.resolve()
    cache_dir = args.cache_dir or cache.default_cache_dir(root)
    splits = args.splits or [s for s in ("train", "val", "test") if has_images(root, s)]
    if not splits:
        print(
            f"mtlscene-data prepare: error: no split of {root} has images; pass the folder "
            "holding leftImg8bit/, gtFine/, disparity/ and camera/",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    for split in splits:
        folder = cache.split_cache_folder(cache_dir, split, args.size)
        try:
            if not args.force and _cache_is_usable(folder, root, split, args.size):
                print(f"{split}: {folder} is up to date")
                continue
            cache.build_split_cache(
                root, split, args.size, cache_dir, not args.no_progress, args.workers
            )
        except DatasetFileError as error:
            print(f"mtlscene-data prepare: error: {error}", file=sys.stderr)
            return EXIT_PROBLEMS
        megabytes = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        print(f"{split}: wrote {folder} ({megabytes:.1f} MiB)")
    where = f" --data.cache_dir {cache_dir}" if args.cache_dir else ""
    print(f"training reads it with --data.root {root} --data.size '{list(args.size)}'{where}")
    return EXIT_OK


def _cache_is_usable(folder: Path, root: Path, split: str, size: Sequence[int]) -> bool:
    from mtlscene.data.cityscapes import cache

    try:
        if cache.stale_reason(folder, root, split, size) is not None:
            return False
        cache.SplitCache(folder)  # checks every array file
    except cache.CacheError as error:
        print(f"{split}: rebuilding a corrupt cache ({error})")
        return False
    return True


def _run_generate(args: argparse.Namespace) -> int:
    from mtlscene.data.cityscapes import synthetic

    splits = {"train": args.train, "val": args.val, "test": args.test}
    settings = (
        f"{', '.join(f'{n} {split}' for split, n in splits.items())} images of "
        f"{args.height}x{args.width}, seed {args.seed}"
    )
    root = args.root.resolve()
    if not args.force and synthetic.is_complete(root, splits, args.height, args.width, args.seed):
        print(
            f"{root} already holds synthetic CityScapes ({settings}); skipped "
            "(--force regenerates it)"
        )
        return EXIT_OK
    try:
        synthetic.generate_dataset(
            root, splits, args.height, args.width, args.seed, progress=not args.no_progress
        )
    except (ValueError, FileExistsError) as error:
        print(f"mtlscene-data generate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote synthetic CityScapes ({settings}) to {root}\ntrain on it with --data.root {root}")
    return EXIT_OK


def _run_panoptic(args: argparse.Namespace) -> int:
    from mtlscene.evaluation.cityscapes_panoptic import prepare_panoptic_ground_truth

    try:
        written = prepare_panoptic_ground_truth(args.root, args.splits)
    except FileNotFoundError as error:
        print(f"mtlscene-data panoptic: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"wrote {path} and its segments in {path.with_suffix('')}/")
    return EXIT_OK


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
