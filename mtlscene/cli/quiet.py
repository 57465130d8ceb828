"""Silence the messages every run printed that tell a user nothing about their run.

- Lightning's "💡 Tip: ... try installing litlogger" advertisement (logged at info level on
  every Trainer construction).
- torch 2.14's deprecation of ``isinstance(treespec, LeafSpec)``, which Lightning 2.6's
  ``utilities/_pytree.py`` still calls on every batch of a combined loader; nothing a user
  can act on (drop this filter once Lightning stops calling it).
- Lightning's "The `srun` command is available on your system but is not used" hint, printed
  by every command wherever SLURM is installed (any login node). A job this project submits
  starts its runs itself (``mtlscene-experiment run --executor slurm``), and a command typed
  on a login node is meant to run there.
- Lightning's "You have overridden `transfer_batch_to_device` in `LightningModule` but have
  passed in a `LightningDataModule`", printed by every run with a data module: the model's
  override (a flat batch moved without Lightning's collection walk) is deliberate, and the
  data modules here do not override the hook.

"0 Total Flops" of the model summary is fixed in
`mtlscene.callbacks.model_summary.ModelSummary` instead (FLOPs are not measured).
"""

from __future__ import annotations

import logging
import warnings

_LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_SRUN_HINT = r"The `srun` command is available on your system but is not used"
_OWN_TRANSFER = r"You have overridden `transfer_batch_to_device` in `LightningModule` but"


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def silence_known_noise() -> None:
    """Install the filters (idempotent: each is added once)."""
    warnings.filterwarnings("ignore", message=_LEAFSPEC)
    warnings.filterwarnings("ignore", message=_SRUN_HINT)
    warnings.filterwarnings("ignore", message=_OWN_TRANSFER)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())


__all__ = ["silence_known_noise"]
