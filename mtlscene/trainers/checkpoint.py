"""Checkpoints that describe their model: injected parts stored as plain data, rebuilt safely.

``MultiTaskModule`` stores its backbone, weighting, clustering and panoptic fusion in ``hparams`` as
``class_path``/``init_args`` dicts (see `mtlscene.describe`) and names
`instantiate_module` as the checkpoint's instantiator, so
``MultiTaskModule.load_from_checkpoint(path)`` rebuilds the same network in plain Python.
Nothing is unpickled (checkpoints load with ``weights_only=True``), and a checkpoint may only
name classes from trusted packages or classes the caller has already imported: loading
never imports other code.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.cli import instantiate_module as lightning_instantiate_module
from lightning.pytorch.core import saving

from mtlscene.describe import describe

# Packages whose classes a checkpoint may name even before they are imported.
TRUSTED_PACKAGES = ("mtlscene", "torch", "torchvision")
INSTANTIATOR = f"{__name__}.instantiate_module"
# Lightning rebuilds hparams through an instantiator only when it is on this allowlist.
saving._ALLOWED_INSTANTIATORS.add(INSTANTIATOR)


def is_trusted_class_path(class_path: str) -> bool:
    """A class of a trusted package, or one already imported (resolving imports nothing)."""
    module_path, _, name = class_path.rpartition(".")
    if module_path.split(".")[0] in TRUSTED_PACKAGES:
        return True
    return isinstance(getattr(sys.modules.get(module_path), name, None), type)


def check_class_paths(config: Any, source: str) -> None:
    """Raise naming every ``class_path`` in ``config`` that loading must not import."""
    untrusted = sorted(set(_untrusted(config, "model")))
    if untrusted:
        listed = ", ".join(f"{key}: {path!r}" for key, path in untrusted)
        raise ValueError(
            f"{source} names classes outside {', '.join(TRUSTED_PACKAGES)} that are not "
            f"imported ({listed}); loading a checkpoint never imports other code. If you "
            "trust it, import those modules first, or pass the parts explicitly, e.g. "
            "MultiTaskModule.load_from_checkpoint(path, backbone=MyBackbone(...))"
        )


def _untrusted(config: Any, key: str):
    if isinstance(config, Mapping):
        for field in ("class_path", "_class_path"):
            path = config.get(field)
            if isinstance(path, str) and not is_trusted_class_path(path):
                yield key, path
        for name, value in config.items():
            yield from _untrusted(value, f"{key}.{name}")
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            yield from _untrusted(value, f"{key}[{index}]")


def instantiate_module(class_type: type, config: dict[str, Any]):
    """Lightning's jsonargparse instantiator, after checking the class paths it would import.

    Parts passed to ``load_from_checkpoint`` as objects replace their stored description.
    """
    check_class_paths(config, "checkpoint hyper_parameters")
    return lightning_instantiate_module(class_type, config)


def record_parts(hparams: dict[str, Any], **parts: Any) -> None:
    """Store each part's description in ``hparams`` and name the instantiator that rebuilds it.

    A part that cannot be described (not built from plain arguments) is left out with a
    warning: loading then needs it passed to ``load_from_checkpoint``.
    """
    for name, part in parts.items():
        description = None if part is None else describe(part)
        if part is not None and description is None:
            hparams.pop(name, None)
            warnings.warn(
                f"model.{name} ({type(part).__qualname__}) cannot be described as plain data "
                f"(class_path/init_args), so checkpoints will not rebuild it: pass "
                f"{name}=... to MultiTaskModule.load_from_checkpoint",
                stacklevel=3,
            )
            continue
        hparams[name] = description
    hparams["_instantiator"] = INSTANTIATOR


__all__ = ["check_class_paths", "instantiate_module", "is_trusted_class_path", "record_parts"]
