"""Weights & Biases logging that never blocks on the network without an API key."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def wandb_api_key_available() -> bool:
    """Whether W&B credentials exist (``WANDB_API_KEY`` or a ``~/.netrc`` entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(str(path)).hosts if path.is_file() else {}
    except (netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


class OfflineFirstWandbLogger(WandbLogger):
    """``WandbLogger`` that goes offline by itself when no API key is configured.

    An offline run writes ``<save_dir>/wandb/offline-run-*``, which ``wandb sync`` uploads
    later. ``WANDB_MODE=disabled`` still turns W&B off entirely.

    Args:
        offline: True/False forces the mode; None (default) chooses offline exactly when no
            API key is available.
        **kwargs: passed to ``lightning.pytorch.loggers.WandbLogger`` (project, name, tags,
            save_dir, ...).
    """

    def __init__(self, offline: bool | None = None, **kwargs: Any) -> None:
        if offline is None:
            offline = not wandb_api_key_available()
        # wandb reads its mode from the environment too; keep both consistent.
        if offline and os.environ.get("WANDB_MODE") not in ("disabled", "offline"):
            os.environ["WANDB_MODE"] = "offline"
        super().__init__(offline=offline, **kwargs)
