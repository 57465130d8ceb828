"""The prepared cache: each split decoded, checked and resized once, then memory-mapped.

Decoding four full-resolution PNGs per frame costs far more than everything else a loader
does, so ``mtlscene-data prepare ROOT --size H W`` (or ``data.cache: true``) stores every
frame of a split as a `Frame` at the working size, and the
dataset reads those arrays back instead of the PNGs. The augmentation and target encoding
that follow are the same code on the same arrays, so samples are identical to the uncached
path.

Format: one folder per split and working size, ``{cache_dir}/{split}-{H}x{W}/``, holding

- ``image.npy`` uint8 (N, H, W, 3), ``label_ids.npy`` uint8 (N, H, W), ``instance_ids.npy``
  uint16 (N, H, W), ``disparity.npy`` uint16 (N, H, W) (raw PNG values; see
  `mtlscene.data.cityscapes.frame` for why raw encodings are exact and compact),
  ``source_shape.npy`` int32 (N, 2) and ``camera_scale.npy`` float64 (N,) (NaN: no camera);
- ``manifest.json``: format version, size, split, frame names, array shapes and dtypes, and
  a fingerprint of the source files (every file's name, byte size and modification time).

Why this format: ``.npy`` files carry their own dtype and shape and open with plain numpy;
opened with ``mmap_mode="r"`` they are read-only views of the page cache, so any number of
loader processes and DDP ranks read one copy with no locks and no per-process memory. The
raw labelIds (not trainIds) are stored, so one cache serves both label sets. At 128x256 a
frame takes 256 KiB (CityScapes train: 0.73 GiB); compressed formats (npz, PNG) would bring
back the decoding this cache removes, and HDF5 or LMDB would add dependencies.

Safety: a cache is written into a temporary folder beside its final place and moved there
with one ``os.rename`` (atomic within a file system), so a reader sees either no cache or a
complete one. A stale cache (different source files, size or format version) is never
read: the data module falls back to the PNGs (or rebuilds when ``cache`` is set). Missing,
truncated or malformed cache files raise `CacheError` naming the file and the fix.
Flipped bits inside an array are not detected (no checksums: reading every byte at start-up
would cost seconds per process).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mtlscene.data.cityscapes.frame import Frame, decode_frame, require_target_files
from mtlscene.data.cityscapes.layout import SampleFiles, find_samples
from mtlscene.data.conventions import DEFAULT_FOLDER
from mtlscene.data.io import DatasetFileError

FORMAT_VERSION = 1
"""Bumped whenever the stored arrays or the resizing that produces them change."""

MANIFEST_NAME = "manifest.json"


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class CacheError(DatasetFileError):
    """A prepared cache file is missing, truncated or malformed; the message names it."""


def default_cache_dir(root: str | Path) -> Path:
    """Where caches live when no ``cache_dir`` is given: ``{root}/mtlscene_cache``."""
    return Path(root) / DEFAULT_FOLDER


def split_cache_folder(cache_dir: str | Path, split: str, size: Sequence[int]) -> Path:
    """The folder of one split's cache at one working size."""
    return Path(cache_dir) / f"{split}-{int(size[0])}x{int(size[1])}"


def array_layout(count: int, size: Sequence[int]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Shape and dtype of every array file of a cache of ``count`` frames at ``size``."""
    height, width = int(size[0]), int(size[1])
    return {
        "image": ((count, height, width, 3), "uint8"),
        "label_ids": ((count, height, width), "uint8"),
        "instance_ids": ((count, height, width), "uint16"),
        "disparity": ((count, height, width), "uint16"),
        "source_shape": ((count, 2), "int32"),
        "camera_scale": ((count,), "float64"),
    }


def source_fingerprint(root: str | Path, samples: Sequence[SampleFiles]) -> str:
    """A hash of every source file's path (relative to ``root``), byte size and mtime.

    Replacing, touching, adding or removing any file of any frame changes it. Only file
    metadata is read, so checking a cache's freshness costs a few stat calls per frame.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for sample in samples:
        for path in (sample.image, *sample.target_files().values()):
            try:
                stat = path.stat()
                entry = f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
            except FileNotFoundError:
                entry = f"{path.relative_to(root)}\tmissing\n"
            digest.update(entry.encode())
    return digest.hexdigest()


def _settings(root: Path, split: str, size: Sequence[int], samples: Sequence[SampleFiles]):
    return {
        "format_version": FORMAT_VERSION,
        "split": split,
        "size": [int(size[0]), int(size[1])],
        "stems": [sample.stem for sample in samples],
        "source_fingerprint": source_fingerprint(root, samples),
    }


def stale_reason(
    folder: str | Path,
    root: str | Path,
    split: str,
    size: Sequence[int],
    samples: Sequence[SampleFiles] | None = None,
) -> str | None:
    """Why the cache in ``folder`` cannot serve this split and size (None: it can).

    Args:
        folder: the split's cache folder.
        root: the dataset root the cache must reflect.
        split: the split.
        size: the working (height, width).
        samples: the split's frames (found under ``root`` when None).

    Raises:
        CacheError: the manifest exists but cannot be read.
    """
    folder = Path(folder)
    if not (folder / MANIFEST_NAME).is_file():
        return f"no prepared cache in {folder}"
    manifest = _read_manifest(folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        return (
            f"the cache in {folder} has format version {manifest.get('format_version')}, "
            f"this mtlscene reads version {FORMAT_VERSION}"
        )
    samples = find_samples(root, split) if samples is None else samples
    expected = _settings(Path(root), split, size, samples)
    for key in ("split", "size", "stems", "source_fingerprint"):
        if manifest.get(key) != expected[key]:
            what = {
                "split": "was made for another split",
                "size": f"was made at size {manifest.get('size')}, not {expected['size']}",
                "stems": "lists other frames than the source folders now hold",
                "source_fingerprint": "no longer matches the source files (their sizes or "
                "modification times changed)",
            }[key]
            return f"the cache in {folder} {what}"
    return None


def build_split_cache(
    root: str | Path,
    split: str,
    size: Sequence[int],
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 0,
) -> Path:
    """Decode, check and resize every frame of a split once, and publish the cache atomically.

    Args:
        root: the dataset root.
        split: the split to prepare.
        size: working (height, width).
        cache_dir: where caches live (default ``{root}/mtlscene_cache``).
        progress: show a tqdm progress bar.
        workers: processes decoding frames in parallel (0 or 1: this process only).

    Returns:
        The split's cache folder.

    Raises:
        DatasetFileError: a source file is missing, corrupt or inconsistent.
    """
    root = Path(root)
    folder = split_cache_folder(cache_dir or default_cache_dir(root), split, size)
    samples = find_samples(root, split)
    require_target_files(root, split, samples)
    # The fingerprint is taken before decoding: a file changed during the build then makes
    # the cache stale instead of silently mixing old and new contents.
    manifest = _settings(root, split, size, samples)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        layout = array_layout(len(samples), size)
        arrays = {
            name: np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", np.dtype(dtype), shape)
            for name, (shape, dtype) in layout.items()
        }
        with _frames(samples, size, workers) as frames:
            bar = tqdm(
                frames,
                total=len(samples),
                desc=f"preparing {split}",
                unit="frame",
                disable=not progress,
            )
            for index, frame in enumerate(bar):
                _store(arrays, index, frame)
        for array in arrays.values():
            array.flush()
        del arrays
        manifest["root"] = str(root.resolve())
        manifest["arrays"] = {
            name: {"shape": list(shape), "dtype": dtype} for name, (shape, dtype) in layout.items()
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
        _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


@contextmanager
def _frames(samples: Sequence[SampleFiles], size: Sequence[int], workers: int):
    """The decoded frames in order, decoded by a pool of ``workers`` processes if > 1."""
    decode = partial(decode_frame, size=tuple(size), with_targets=True)
    if workers <= 1:
        yield map(decode, samples)
        return
    with multiprocessing.Pool(workers) as pool:
        yield pool.imap(decode, samples, chunksize=4)


def _store(arrays: dict[str, np.ndarray], index: int, frame: Frame) -> None:
    arrays["image"][index] = frame.image
    arrays["label_ids"][index] = frame.label_ids
    arrays["instance_ids"][index] = frame.instance_ids
    arrays["disparity"][index] = frame.raw_disparity
    arrays["source_shape"][index] = frame.source_shape
    arrays["camera_scale"][index] = frame.camera_scale


def _publish(tmp: Path, folder: Path) -> None:
    """Move a finished cache into place; a reader never sees a half-written one."""
    for _ in range(3):
        try:
            os.rename(tmp, folder)  # fails when another cache is already there
            return
        except OSError:
            if not folder.exists():
                continue
        # A cache is already there: one a concurrent builder just published from the same
        # sources (keep it), or a stale or corrupt one (move it aside; readers that mapped
        # its files keep valid data until they let go).
        try:
            if _read_manifest(folder) == _read_manifest(tmp):
                SplitCache(folder)  # checks every array file
                return
        except CacheError:
            pass
        aside = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, aside)
        except FileNotFoundError:
            continue
        shutil.rmtree(aside, ignore_errors=True)
    raise CacheError(f"could not move the prepared cache into {folder}: remove that folder")


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        return manifest
    except (OSError, ValueError) as error:
        raise CacheError(_corrupt_message(path, folder, f"unreadable manifest: {error}")) from error


def _corrupt_message(path: Path, folder: Path, detail: str, manifest: dict | None = None) -> str:
    root = (manifest or {}).get("root", "ROOT")
    size = (manifest or {}).get("size", ["H", "W"])
    return (
        f"prepared cache file {path} is corrupt ({detail}); rebuild the cache with "
        f"`{prepare_command(root, size, folder.parent)} --force` or delete {folder} (the PNG "
        "files are then read directly)"
    )


def prepare_command(root: str | Path, size: Sequence, cache_dir: str | Path) -> str:
    """The ``mtlscene-data prepare`` command line that (re)builds caches in ``cache_dir``."""
    command = f"mtlscene-data prepare {root} --size {size[0]} {size[1]}"
    if Path(cache_dir) != default_cache_dir(root):
        command += f" --cache-dir {cache_dir}"
    return command


class SplitCache:
    """Read-only access to one split's prepared cache.

    The array files are checked when the cache is opened (present, the dtype and shape the
    manifest promises, not truncated) and memory-mapped lazily in each process, so the
    object pickles cheaply into DataLoader workers.

    Args:
        folder: the split's cache folder (use `stale_reason` first to know it is fresh).

    Raises:
        CacheError: a file is missing, truncated or malformed.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = _read_manifest(self.folder)
        try:
            self.stems: list[str] = list(self.manifest["stems"])
            self.size = tuple(int(v) for v in self.manifest["size"])
        except (KeyError, TypeError, ValueError) as error:
            raise CacheError(
                _corrupt_message(self.folder / MANIFEST_NAME, self.folder, f"no {error}")
            ) from error
        self._layout = array_layout(len(self.stems), self.size)
        for name in self._layout:
            self._check_file(name)
        self._arrays: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.stems)

    def __getstate__(self) -> dict:
        # Memory maps would pickle as full copies; each worker maps the files itself.
        return {**self.__dict__, "_arrays": None}

    def _check_file(self, name: str) -> None:
        path = self.folder / f"{name}.npy"
        shape, dtype = self._layout[name]

        def fail(detail: str) -> CacheError:
            return CacheError(_corrupt_message(path, self.folder, detail, self.manifest))

        try:
            with path.open("rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = _HEADER_READERS.get(version)
                if read_header is None:
                    raise ValueError(f".npy format version {version} is not one numpy writes")
                found_shape, fortran, found_dtype = read_header(handle)
                data_start = handle.tell()
            size = path.stat().st_size
        except FileNotFoundError:
            raise fail("missing") from None
        except (OSError, ValueError) as error:
            raise fail(f"not a .npy file: {error}") from error
        if tuple(found_shape) != shape or found_dtype != np.dtype(dtype) or fortran:
            raise fail(f"holds {found_dtype} {tuple(found_shape)}, expected {dtype} {shape}")
        expected = data_start + int(np.prod(shape)) * np.dtype(dtype).itemsize
        if size != expected:
            raise fail(f"{size} bytes, expected {expected}: truncated or overwritten")

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The array files, memory-mapped read-only (mapped on first use in each process)."""
        if self._arrays is None:
            self._arrays = {
                name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self._layout
            }
        return self._arrays

    def frame(self, index: int, with_targets: bool = True) -> Frame:
        """Frame ``index`` as `decode_frame` would return it."""
        arrays = self.arrays
        camera_scale = float(arrays["camera_scale"][index])
        height, width = (int(v) for v in arrays["source_shape"][index])
        frame = Frame(
            self.stems[index],
            np.array(arrays["image"][index]),
            (height, width),
            None if np.isnan(camera_scale) else camera_scale,
        )
        if with_targets:
            frame.label_ids = np.array(arrays["label_ids"][index])
            frame.instance_ids = np.array(arrays["instance_ids"][index])
            frame.raw_disparity = np.array(arrays["disparity"][index])
        return frame

    def label_ids(self, index: int) -> np.ndarray:
        """The raw labelIds of frame ``index`` (a read-only view)."""
        return self.arrays["label_ids"][index]
