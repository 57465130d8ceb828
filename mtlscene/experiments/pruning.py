"""Pruning of search trials: a trial reports its validation objective to the study after
each validation and stops when the study's pruner says it is falling behind."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

PRUNED_FILE = "pruned.json"


def make_pruner():
    """The search's pruner (the storage does not keep it: the search and each trial make
    the same one): a trial stops when its objective is worse than the median of the
    finished trials at the same step, once four have finished."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=4)


def load_study(storage: str, study: str):
    """The study from a journal file path or an RDB URL."""
    import optuna

    if "://" not in storage:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(storage))
    return optuna.load_study(study_name=study, storage=storage, pruner=make_pruner())


def objective_value(
    metrics: Mapping[str, float], metric: str | None, terms: Sequence[Sequence[Any]]
) -> float:
    """The search objective from validation metrics: one ``metric``, or Δm % over ``terms``
    (``[key, single-task value, higher is better]``; Nash-MTL's mean of signed relative
    changes, lower is better)."""
    if metric is not None:
        value = metrics.get(metric)
        return math.nan if value is None else float(value)
    changes = []
    for key, baseline, higher in terms:
        if key in metrics and baseline:
            change = (float(metrics[key]) - baseline) / baseline
            changes.append(-change if higher else change)
    return 100.0 * sum(changes) / len(changes) if changes else math.nan


class TrialPruning(Callback):
    """Reports the objective after each validation; stops the trial when the pruner says so.

    Args:
        storage: the study's journal file or RDB URL.
        study: the study's name.
        trial_id: the trial's id in the storage.
        run_dir: the trial's run folder (``pruned.json`` goes there).
        metric: the objective's validation metric, or None for Δm over ``terms``.
        terms: ``[key, single-task value, higher is better]`` of each Δm metric.
    """

    def __init__(
        self,
        storage: str,
        study: str,
        trial_id: int,
        run_dir: str,
        metric: str | None = None,
        terms: list[list[Any]] | None = None,
    ) -> None:
        self.storage = storage
        self.study = study
        self.trial_id = trial_id
        self.run_dir = Path(run_dir)
        self.metric = metric
        self.terms = terms or []

    def check(self, metrics: Mapping[str, float], step: int) -> bool:
        """Report ``metrics`` at ``step``; whether the trial should stop."""
        import optuna

        value = objective_value(metrics, self.metric, self.terms)
        if not math.isfinite(value):
            return False
        trial = optuna.trial.Trial(load_study(self.storage, self.study), self.trial_id)
        trial.report(value, step)
        return trial.should_prune()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if self.check(metrics, trainer.global_step) and trainer.is_global_zero:
            import optuna

            note = {"step": trainer.global_step, "objective": self.metric or "delta_m"}
            (self.run_dir / PRUNED_FILE).write_text(json.dumps(note), encoding="utf-8")
            raise optuna.TrialPruned(f"pruned at step {trainer.global_step}")
