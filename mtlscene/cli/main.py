"""Command-line entry point: ``mtlscene fit|validate|test|predict --config ...``."""

from __future__ import annotations

import logging
import os
import sys

# Keep imports network-free: albumentations would otherwise check PyPI for updates.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import yaml  # noqa: E402
from jsonargparse import Namespace  # noqa: E402
from lightning.fabric.utilities.exceptions import MisconfigurationException  # noqa: E402
from lightning.fabric.utilities.seed import seed_everything  # noqa: E402
from lightning.pytorch import LightningDataModule  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary  # noqa: E402
from lightning.pytorch.cli import (  # noqa: E402
    LightningArgumentParser,
    LightningCLI,
    SaveConfigCallback,
)
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from mtlscene.callbacks.metrics_table import MetricsTable  # noqa: E402
from mtlscene.callbacks.model_summary import ModelSummary  # noqa: E402
from mtlscene.cli.checkpoint_config import load_checkpoint, reconcile  # noqa: E402
from mtlscene.cli.config_check import ConfigKeys, check_config_files, key_source  # noqa: E402
from mtlscene.cli.errors import locate, short_parser_message  # noqa: E402
from mtlscene.cli.outputs import evaluation_logger_args, output_summary  # noqa: E402
from mtlscene.cli.quiet import silence_known_noise  # noqa: E402
from mtlscene.errors import (  # noqa: E402
    USER_ERRORS,
    CheckpointError,
    ConfigError,
    debug_requested,
    plain_message,
    report,
)
from mtlscene.trainers.checkpoint import check_class_paths  # noqa: E402
from mtlscene.trainers.multitask import DEFAULT_TASKS, MultiTaskModule  # noqa: E402

silence_known_noise()

DESCRIPTION = (
    "Multi-task scene understanding (semantic segmentation, instance centroid vectors, "
    "inverse depth) with learned uncertainty loss weighting (Kendall, Gal & Cipolla, "
    "CVPR 2018). Several --config files compose in order, later ones winning, e.g. "
    "mtlscene fit --config configs/quickstart.yaml"
)
SUBCOMMANDS = {
    "fit": "Train the network, validating every epoch; saves checkpoints, logs and the "
    "sigma history, and prints the final validation metrics.",
    "validate": "Evaluate a checkpoint (--ckpt_path) on the validation split and print its "
    "metrics.",
    "test": "Evaluate a checkpoint (--ckpt_path) on the test split and print the paper's "
    "table columns.",
    "predict": "Write pictures and CityScapes-format result files of a checkpoint's "
    "predictions (needs the PredictionWriter callback).",
}
# What a newcomer needs of the ~1,400 lines of each subcommand's help, shown first.
_COMMON_OPTIONS = """\
  --config FILE              a YAML config; repeat to compose, later files win, e.g.
                             --config configs/quickstart.yaml --config configs/weighting/dwa.yaml
  --print_config             print the resolved config (every value) and exit
  --data.root DIR            the dataset folder (CityScapes layout unless data names a class)
  --data.size "[H, W]"       working resolution, height first, e.g. "[128, 256]"
  --data.batch_size N        images per step
  --trainer.max_epochs N     epochs (or --trainer.max_steps N)
  --trainer.accelerator A    cpu, gpu or auto
  --model.active_tasks LIST  train a subset of the tasks, e.g. "[semantic, depth]"
  --model.weighting CLASS    a loss weighting; presets in configs/weighting/*.yaml"""
START_HERE = {
    "fit": _COMMON_OPTIONS
    + """
  --ckpt_path FILE           resume an interrupted run exactly from its last.ckpt""",
    "validate": _COMMON_OPTIONS
    + """
  --ckpt_path FILE           the checkpoint to evaluate (its model is used)""",
    "test": _COMMON_OPTIONS
    + """
  --ckpt_path FILE           the checkpoint to evaluate (its model is used)""",
    "predict": _COMMON_OPTIONS
    + """
  --ckpt_path FILE           the checkpoint whose predictions are written
  --mc_dropout N             also write epistemic maps from N MC-dropout passes (heads
                             trained with model.tasks.<task>.dropout > 0)""",
}
MC_DROPOUT_HELP = (
    "predict only: N > 0 runs N Monte-Carlo dropout passes per batch, each head that trained "
    "with dropout (model.tasks.<task>.dropout > 0) redrawing its masks, and the "
    "PredictionWriter writes the epistemic maps (mutual information / variance) beside the "
    "sigma maps; refused for a checkpoint trained without dropout. 0 (default): off."
)
# The data module a config without ``data.class_path`` gets: configs written before data
# modules became plugins keep working unchanged.
DEFAULT_DATA_MODULE = "mtlscene.data.CityscapesDataModule"
# No prefix matching: ``--trainer.max_epoch`` must not silently mean ``max_epochs``.
PARSER_KWARGS = {"allow_abbrev": False}
# The accelerators a machine may lack, as a user would name what is missing.
_DEVICE_NAMES = {"gpu": "GPU", "cuda": "CUDA GPU", "mps": "Apple-silicon GPU (MPS)"}
# Lightning's seed message, said once the config has been built without error.
_SEED_LOG = logging.getLogger("lightning.fabric.utilities.seed")
# Logger classes whose (save_dir, name, version) decide their directory.
_DIRECTORY_LOGGERS = (
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.csv_logs.CSVLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
)


def _data_block(config_file: str) -> str | None:
    """``"class"`` when a config file names a data class, ``"args"`` when its ``data:`` holds
    plain arguments, None when it has no ``data:`` (or cannot be read: the parser says so)."""
    try:
        content = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    data = content.get("data") if isinstance(content, dict) else None
    if isinstance(data, str) or (isinstance(data, dict) and "class_path" in data):
        return "class"
    return "args" if isinstance(data, dict) else None


def with_default_data_module(args: list[str]) -> list[str]:
    """``args`` with ``--data=<DEFAULT_DATA_MODULE>`` added where data arguments come before
    any data class is named: configs written before data modules became plugins (a ``data:``
    block of CityscapesDataModule arguments) keep working.

    Added only then, and not as a parser default: jsonargparse carries the arguments of a
    default class that a later ``class_path`` shares (``size``, ``batch_size``...) over to
    the new class, so a NYUv2 config would inherit CityScapes' image size.
    """
    default = f"--data={DEFAULT_DATA_MODULE}"
    for index, arg in enumerate(args):
        if arg == "--data" or arg.startswith(("--data=", "--data.class_path")):
            return args  # named on the command line before any data argument
        if arg == "--config" or arg.startswith("--config="):
            path = args[index + 1] if arg == "--config" and index + 1 < len(args) else ""
            block = _data_block(path or arg.partition("=")[2])
            if block == "class":
                return args
            if block == "args":
                return [*args[:index], default, *args[index:]]
        elif arg.startswith("--data."):
            return [*args[:index], default, *args[index:]]
    position = 1 if args and args[0] in SUBCOMMANDS else 0
    return [*args[:position], default, *args[position:]]


class SaveConfigToLoggers(SaveConfigCallback):
    """Saves ``config.yaml`` in the run directory and attaches the resolved config to every
    logger (the W&B run's config, TensorBoard/CSV hparams)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class MTLSceneArgumentParser(LightningArgumentParser):
    """Lightning's parser whose usage errors are one short message: the option, what is
    wrong, the closest valid option ("did you mean"), and where the help is; no usage block
    of 1,400 options (``MTLSCENE_DEBUG=1`` raises instead, with the traceback)."""

    #: Text shown right after the usage line of ``--help`` (set on subcommand parsers).
    start_here: str | None = None

    def format_help(self) -> str:
        """Help whose first screen holds the options a newcomer needs; every option after."""
        text = super().format_help()
        if not self.start_here:
            return text
        usage, _, rest = text.partition("\n\n")
        return (
            f"{usage}\n\nStart here (the options most runs need; every option is listed "
            f"below, and `--print_config` shows their values):\n{self.start_here}\n\n{rest}"
        )

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error or debug_requested():
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        options = [s for action in parser._actions for s in action.option_strings]
        sys.stderr.write(
            f"{prog}: error: {short_parser_message(message, options)}\n"
            f"`{prog} --help` lists every option.\n"
        )
        self.exit(2)


def _named_data_class(args: list[str]) -> str:
    """The data class a command line names before its configs (``--data=X``), else the
    default: plain ``data:`` arguments in the configs belong to it."""
    for index, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith("--data=") else None
        if arg == "--data" and index + 1 < len(args):
            value = args[index + 1]
        if value and not value.endswith((".yaml", ".yml", ".json")) and "{" not in value:
            return value
    return DEFAULT_DATA_MODULE


def _subcommand_options(parser) -> list[str]:
    """Option names (without dashes) a subcommand's parser accepts."""
    return [
        string.lstrip("-")
        for action in parser._actions
        for string in action.option_strings
        if string.startswith("--")
    ]


# Trainer options that mean a number of batches when whole and a fraction when not: Lightning
# types them float-first, so jsonargparse turns "1" into 1.0, which Lightning reads as 100%.
_BATCH_COUNT_KEYS = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
    "val_check_interval",
)


def _whole_batch_counts(args: list[str]) -> set[str]:
    """The batch-count options written as whole numbers (``1`` is one batch; ``1.0`` stays
    the whole set), reading the configs and options in order."""
    written: dict[str, Any] = {}
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            try:
                content = yaml.safe_load(Path(args[index + 1]).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            section = content.get("trainer") if isinstance(content, dict) else None
            for key in _BATCH_COUNT_KEYS:
                if isinstance(section, dict) and key in section:
                    written[key] = section[key]
        for key in _BATCH_COUNT_KEYS:
            option = f"--trainer.{key}"
            if arg == option and index + 1 < len(args):
                written[key] = args[index + 1]
            elif arg.startswith(option + "="):
                written[key] = arg.partition("=")[2]
    return {
        key
        for key, value in written.items()
        if (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and value.strip().isdigit())
    }


class MTLSceneCLI(LightningCLI):
    """LightningCLI whose subcommands read checkpoints with ``weights_only=True`` by default
    (tensors and plain data only; pass ``--weights_only false`` for trusted legacy files), and
    whose ``predict`` streams: results go to the writer callbacks batch by batch and are not
    kept (``return_predictions=False`` unless ``--return_predictions true`` is given)."""

    def parse_arguments(self, parser, args) -> None:
        """Parse, giving the CityScapes data module to command lines that name none."""
        self._listed: list[str] = []  # the command line, to name the file behind an error
        if isinstance(args, dict | Namespace):
            return super().parse_arguments(parser, args)
        listed = list(sys.argv[1:] if args is None else args)
        subcommands = getattr(self, "_subcommand_parsers", None)
        if not subcommands or any(arg in subcommands for arg in listed):
            listed = with_default_data_module(listed)  # (without a subcommand: the parser asks)
        subparser = getattr(self, "_subcommand_parsers", {}).get(listed[0] if listed else "")
        if subparser is not None:
            # Every unknown key of a config file at once, with the file named.
            keys = ConfigKeys(_subcommand_options(subparser), _named_data_class(listed))
            check_config_files(listed[1:], keys, f"mtlscene {listed[0]}")
        # Parsed directly: Lightning warns when both sys.argv and args are given, and here
        # args is sys.argv's own list with one addition.
        self.config = parser.parse_args(listed)
        self._whole_counts = _whole_batch_counts(listed[1:])
        self._listed = listed[1:] if subparser is not None else listed

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in kwargs and kwargs["weights_only"] is None:
            kwargs["weights_only"] = True
        if subcommand == "predict" and kwargs.get("return_predictions") is None:
            # Lightning would otherwise keep every batch and prediction until the end.
            kwargs["return_predictions"] = False
        tables = any(isinstance(c, MetricsTable) for c in self.trainer.callbacks)
        if subcommand == "test" and tables:
            kwargs["verbose"] = False  # one table: MetricsTable's (paper columns first)
        return kwargs

    def _set_seed(self) -> None:
        """Seed as Lightning does (before any part is built: the initial weights depend on
        it), but say "Seed set to N" only once the config has been built without error: a
        config error is then the first and only line a user sees."""
        self._seed_to_say: int | None = None
        seed = self._get(self.config, "seed_everything")
        if seed is False:
            return
        seed = seed_everything(None if seed is True else seed, workers=True, verbose=False)
        if self.subcommand:
            self.config[self.subcommand]["seed_everything"] = seed
        else:
            self.config["seed_everything"] = seed
        self._seed_to_say = seed

    def after_instantiate_classes(self) -> None:
        if getattr(self, "_seed_to_say", None) is not None and rank_zero_only.rank == 0:
            _SEED_LOG.info(f"Seed set to {self._seed_to_say}")

    def _add_subcommands(self, parser, **kwargs) -> None:
        # Lightning lists each subcommand with the first line of Trainer's docstring, which
        # is cut mid-sentence and speaks of Lightning, not of this project.
        self._subcommand_parsers = {}
        subcommands = parser.add_subcommands()
        for name, description in SUBCOMMANDS.items():
            subparser_kwargs = {"description": description, **kwargs.get(name, {})}
            subparser = self._prepare_subcommand_parser(
                self.trainer_class, name, **subparser_kwargs
            )
            if name == "predict":  # not a Trainer.predict argument: before_predict reads it
                subparser.add_argument("--mc_dropout", type=int, default=0, help=MC_DROPOUT_HELP)
            # One usage line, not every option: the help's first screen is for newcomers.
            subparser.usage = f"mtlscene {name} [--config FILE ...] [--ckpt_path FILE] [options]"
            subparser.start_here = START_HERE[name]
            self._subcommand_parsers[name] = subparser
            subcommands.add_subcommand(name, subparser, help=description)

    def _ckpt_path(self) -> str | None:
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        return str(path) if path and Path(path).is_file() else None

    def _parse_ckpt_path(self) -> None:
        """Merge the checkpoint's model into the config, as Lightning does, but stop where
        the config describes a different network (see `mtlscene.cli.checkpoint_config`)."""
        subcommand = self.config.get("subcommand")
        given = self.config[subcommand].get("ckpt_path") if subcommand else None
        if given and not Path(given).is_file():
            raise CheckpointError(
                f"--ckpt_path {given}: no such file; pass a .ckpt that `mtlscene fit` wrote"
            )
        path = self._ckpt_path()
        if path is None:
            return
        checkpoint = load_checkpoint(path)
        hparams = dict(checkpoint.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        # Merging imports the class paths the checkpoint names: refuse code that is neither
        # trusted nor already imported.
        try:
            check_class_paths(hparams, f"checkpoint {path}")
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        if not hparams:
            return
        defaults = self._subcommand_parsers[subcommand].get_defaults()
        hparams = reconcile(
            path, hparams, self.config[subcommand]["model"], defaults["model"], DEFAULT_TASKS
        )
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def instantiate_classes(self) -> None:
        """Build the parts; a constructor's refusal of a config value is a ConfigError with
        its own sentence (not jsonargparse's report of every Union member it tried)."""
        try:
            super().instantiate_classes()
        except USER_ERRORS:
            raise
        except (ValueError, TypeError) as error:
            subcommand = self.config.get("subcommand")
            config = self.config[subcommand] if subcommand else self.config
            message = locate(plain_message(error), config.as_dict(), self._listed)
            raise ConfigError(message) from error

    def instantiate_trainer(self, **kwargs):
        """The Trainer, with Lightning's default model summary replaced by ours (no
        "0 Total Flops" line)."""
        config = self._get(self.config_init, "trainer", default={})
        for key in getattr(self, "_whole_counts", ()):
            if isinstance(config.get(key), float):  # jsonargparse made 1 into 1.0 (100 %)
                config[key] = int(config[key])
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:
            raise ConfigError(self._trainer_refusal(config, error)) from error
        for index, callback in enumerate(trainer.callbacks):
            if type(callback) is LightningModelSummary:
                trainer.callbacks[index] = ModelSummary(max_depth=callback._max_depth)
        return trainer

    def _trainer_refusal(self, config: dict, error: Exception) -> str:
        """Lightning's refusal of the trainer options as one line naming the option and the
        fix (an accelerator this machine lacks above all)."""
        accelerator = config.get("accelerator")
        device = _DEVICE_NAMES.get(accelerator.lower()) if isinstance(accelerator, str) else None
        text = str(error)
        if device and ("not available" in text or "No supported gpu backend" in text):
            source = key_source(self._listed, "trainer.accelerator")
            where = (
                f"{source} sets trainer.accelerator: {accelerator}"
                if source and not source.startswith("--")
                else f"--trainer.accelerator {accelerator}"
            )
            return (
                f"{where}, but this machine has no {device} that PyTorch can use; use "
                "--trainer.accelerator cpu, or auto (a GPU when there is one, else the CPU)"
            )
        return f"trainer options: {text}"

    def before_instantiate_classes(self) -> None:
        """Evaluations of a training run's checkpoint log inside that run's directory."""
        subcommand = self.config.get("subcommand")
        path = self._ckpt_path()
        if subcommand in (None, "fit") or path is None:
            return
        logger = self.config[subcommand]["trainer"].get("logger")
        redirect = evaluation_logger_args(subcommand, path)
        if redirect and getattr(logger, "class_path", None) in _DIRECTORY_LOGGERS:
            for key, value in redirect.items():
                logger.init_args[key] = value

    def _before_evaluation(self) -> None:
        # The checkpoint callbacks restore their state from the checkpoint; pointing them
        # at the directory it was saved from avoids Lightning's "dirpath has changed"
        # warning (evaluation writes no checkpoints).
        path = self._ckpt_path()
        if path is None:
            return
        states = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(
            "callbacks", {}
        )
        for callback in self.trainer.checkpoint_callbacks:
            state = states.get(callback.state_key, {})
            if isinstance(callback, ModelCheckpoint) and state.get("dirpath"):
                callback.dirpath = state["dirpath"]

    before_validate = before_test = _before_evaluation

    def before_predict(self) -> None:
        self._before_evaluation()
        passes = self.config["predict"].get("mc_dropout") or 0
        if not passes:
            return
        path = self._ckpt_path()
        source = f"checkpoint {path}" if path else "the model (no --ckpt_path)"
        try:
            self.model.use_mc_dropout(passes, source)
        except ValueError as error:
            error_class = CheckpointError if path else ConfigError
            raise error_class(f"--mc_dropout {passes}: {error}") from None

    def _after_subcommand(self) -> None:
        self.trainer.strategy.barrier()
        _print_summary(self.trainer, self.config["subcommand"], self._ckpt_path())

    after_fit = after_validate = after_test = after_predict = _after_subcommand


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Build (and by default run) the LightningCLI; ``args=None`` reads ``sys.argv``."""
    return MTLSceneCLI(
        MultiTaskModule,
        LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=SaveConfigToLoggers,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "mtlscene", "description": DESCRIPTION, **PARSER_KWARGS},
        parser_class=MTLSceneArgumentParser,
        # The module takes its optimizer and scheduler as injected arguments.
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


class _ParseOnlyCLI(MTLSceneCLI):
    def instantiate_classes(self) -> None:
        """Resolve the config without building the model, data or trainer."""

    def after_instantiate_classes(self) -> None:
        """Nothing was built, so nothing was seeded for: no "Seed set" line."""


def parse_config(args: list[str]):
    """The fully resolved config (a jsonargparse Namespace) of ``args`` without a
    subcommand, e.g. ``["--config", "a.yaml", "--config", "b.yaml"]``; nothing is built."""
    return _ParseOnlyCLI(
        MultiTaskModule,
        LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=None,
        parser_kwargs=PARSER_KWARGS,
        parser_class=MTLSceneArgumentParser,
        auto_configure_optimizers=False,
        args=args,
        run=False,
    ).config


@rank_zero_only
def _print_summary(trainer, subcommand: str, ckpt_path: str | None) -> None:
    print("\n" + output_summary(trainer, subcommand, ckpt_path), flush=True)


def main(args: list[str] | None = None) -> None:
    """Console entry point. Several ``--config`` files compose in order (later ones win).

    A user error (config, option, checkpoint, data) ends in one message naming the file or
    option and the fix, exit status 2; ``MTLSCENE_DEBUG=1`` shows its traceback.
    """
    try:
        build_cli(args)
    except USER_ERRORS as error:
        if debug_requested():
            raise
        raise SystemExit(report(error, "mtlscene")) from None
