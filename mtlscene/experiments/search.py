"""The best fixed weights a search finds, against the learned ones (``mtlscene-experiment
search NAME``).

An experiment YAML with a ``search:`` block::

    rows:                      # the comparison on test; the search's best row is added
      - {name: "sem/depth 1/0", weights: {semantic: 1, depth: 0}}
      - {name: "sem/depth 0/1", weights: {semantic: 0, depth: 1}}
      - {name: sem/depth learned, weighting: uncertainty, tasks: [semantic, depth]}
    search:
      tasks: [semantic, depth]   # whose weights are searched
      space: simplex             # or log_uniform (each weight in [low, high])
      n_trials: 24
      objective: delta_m         # validation Δm against the baselines, or a val/ metric
      baselines: ["sem/depth 1/0", "sem/depth 0/1"]
      trial_seed: 1000           # the seed of every trial; the comparison's are 0..seeds-1

Optuna drives it (seeded TPE by default); each trial is one run through an executor
(``local`` or ``slurm``), ``parallel`` at a time, on ``trial_seed`` and scored on the
validation split only: a trial never runs the test stage. The study lives in a journal
file in the output folder, so an interrupted search resumes, and workers on other machines
can share it (or pass an RDB ``storage`` URL). At the end the best weights become a row of
the comparison, which is retrained on the experiment's seeds (none of them the trials'
seed) and summarised on test with mean ± std and Δm (``summary.py``).

Selection apart from reporting: the search is refused before anything runs when its
validation images are images the comparison reports on test (``selection.py``; on real
CityScapes or NYUv2 set ``data.val_from_train``). The ``delta_m`` baselines are trained on
``trial_seed`` too (in ``search/baselines/``), so the objective compares like with like and
the comparison's rows are trained afresh on its own seeds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mtlscene.experiments.columns import declared_columns, delta_columns
from mtlscene.experiments.definition import Experiment, Row, resolve_config
from mtlscene.experiments.delta import delta_m, single_task_baselines
from mtlscene.experiments.plan import PlannedRun, RunJob, duration, run_args
from mtlscene.experiments.pruning import PRUNED_FILE, make_pruner
from mtlscene.experiments.search_figures import plot_objective, plot_weights
from mtlscene.experiments.selection import SelectionError, check, search_selection

SEARCH_DIR = "search"
JOURNAL_FILE = "study.journal"
TRIALS_FILE = "trials.csv"
BEST_ROW = "search best"
_KEYS = {
    "tasks",
    "space",
    "low",
    "high",
    "n_trials",
    "objective",
    "direction",
    "baselines",
    "sampler",
    "seed",
    "pruning",
    "trial_seed",
}
BASELINE_DIR = "baselines"
TRIAL_SEED = 1000


class SearchError(ValueError):
    """A search block or option that cannot work (the message names it and the fix)."""


@dataclass(frozen=True)
class SearchSpec:
    """The ``search:`` block of an experiment.

    Attributes:
        tasks: the tasks whose weights are searched (at least two).
        space: ``simplex`` (weights summing to 1, uniform over the simplex: each weight
            is ``-log u_t`` normalised, ``u_t`` in (0, 1]) or ``log_uniform`` (each
            weight in ``[low, high]`` on a log scale, not normalised).
        low: smallest weight of ``log_uniform``.
        high: largest weight of ``log_uniform``.
        n_trials: trials of the study (all workers together).
        objective: ``delta_m`` (Δm % on validation against the ``baselines`` rows trained
            on ``trial_seed``, lower is better) or a validation metric key such as
            ``val/semantic/miou``.
        direction: ``minimize`` or ``maximize`` (``delta_m``: minimize).
        baselines: rows of the experiment that train each searched task alone.
        sampler: ``tpe`` (default), ``random`` or ``qmc``.
        seed: the sampler's seed.
        pruning: report the objective after each validation of a trial and stop trials
            that fall behind (Optuna's median pruner); needs a budget that validates more
            than once (e.g. ``--override trainer.check_val_every_n_epoch=1``).
        trial_seed: the training seed of every trial and of the ``delta_m`` baselines (one
            seed for all: trials differ by their weights only). The best weights are
            retrained on the comparison's seeds ``0..seeds-1``, which must not include it.
    """

    tasks: tuple[str, ...]
    space: str = "simplex"
    low: float = 1e-3
    high: float = 1.0
    n_trials: int = 24
    objective: str = "delta_m"
    direction: str = "minimize"
    baselines: tuple[str, ...] = ()
    sampler: str = "tpe"
    seed: int = 0
    pruning: bool = False
    trial_seed: int = TRIAL_SEED

    def weights(self, trial) -> dict[str, float]:
        """The trial's weights (suggested through Optuna's ``trial.suggest_float``)."""
        if self.space == "simplex":
            raw = {t: -math.log(trial.suggest_float(f"u_{t}", 1e-6, 1.0)) for t in self.tasks}
            total = sum(raw.values()) or 1.0
            return {t: round(value / total, 4) for t, value in raw.items()}
        return {
            t: round(trial.suggest_float(f"w_{t}", self.low, self.high, log=True), 4)
            for t in self.tasks
        }


def _model_tasks(experiment: Experiment) -> list[str]:
    """The tasks the experiment's base configs define (``model.tasks``)."""
    tasks: list[str] = []
    for config in experiment.base:
        raw = yaml.safe_load(resolve_config(config).read_text(encoding="utf-8")) or {}
        model = raw.get("model") or {}
        init = model.get("init_args", model)
        tasks = list((init.get("tasks") or {}).keys()) or tasks
    return tasks


def load_search(experiment: Experiment) -> SearchSpec:
    """The experiment's ``search:`` block, checked; fails naming the key."""
    path = experiment.source
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if path else {}
    block = (raw or {}).get("search")
    where = f"{path}: search"
    if not isinstance(block, dict):
        raise SearchError(
            f"{path}: no `search:` block; `mtlscene-experiment search` needs one "
            "(tasks, space, n_trials, objective; see configs/experiments/search_*.yaml)"
        )
    unknown = sorted(set(block) - _KEYS)
    if unknown:
        raise SearchError(f"{where}: unknown key {unknown[0]!r}; the keys are {sorted(_KEYS)}")
    tasks = tuple(block.get("tasks") or ())
    known = _model_tasks(experiment)
    if len(tasks) < 2:
        raise SearchError(
            f"{where}.tasks={list(tasks)}: the space must include at least two tasks to weigh "
            f"against each other (the base config has {known})"
        )
    if known and set(tasks) - set(known):
        raise SearchError(
            f"{where}.tasks names {sorted(set(tasks) - set(known))}, not tasks of the base "
            f"config ({known})"
        )
    space = str(block.get("space", "simplex"))
    if space not in ("simplex", "log_uniform"):
        raise SearchError(f"{where}.space={space!r}: choose simplex or log_uniform")
    low, high = float(block.get("low", 1e-3)), float(block.get("high", 1.0))
    if space == "log_uniform" and not 0 < low < high:
        raise SearchError(
            f"{where}.low/high=[{low}, {high}]: a log-uniform weight needs 0 < low < high "
            "(a weight of 0 would exclude its task)"
        )
    objective = str(block.get("objective", "delta_m"))
    if objective != "delta_m" and not objective.startswith("val/"):
        raise SearchError(
            f"{where}.objective={objective!r}: the objective is read on the validation split "
            "only: `delta_m` or a `val/...` metric key"
        )
    direction = str(block.get("direction", "minimize"))
    if direction not in ("minimize", "maximize") or (
        objective == "delta_m" and direction != "minimize"
    ):
        raise SearchError(
            f"{where}.direction={direction!r}: minimize or maximize (delta_m: minimize)"
        )
    baselines = tuple(block.get("baselines") or ())
    rows = {row.name for row in experiment.rows}
    if objective == "delta_m":
        missing = sorted(set(baselines) - rows)
        if not baselines or missing:
            raise SearchError(
                f"{where}.baselines={list(baselines)}: the delta_m objective needs the "
                f"experiment's single-task rows by name (rows: {sorted(rows)})"
            )
    sampler = str(block.get("sampler", "tpe"))
    if sampler not in ("tpe", "random", "qmc"):
        raise SearchError(f"{where}.sampler={sampler!r}: choose tpe, random or qmc")
    n_trials = int(block.get("n_trials", 24))
    if n_trials < 1:
        raise SearchError(f"{where}.n_trials={n_trials}: at least 1")
    trial_seed = block.get("trial_seed", TRIAL_SEED)
    if not isinstance(trial_seed, int) or isinstance(trial_seed, bool) or trial_seed < 0:
        raise SearchError(f"{where}.trial_seed={trial_seed!r}: a whole number >= 0")
    return SearchSpec(
        tasks=tasks,
        space=space,
        low=low,
        high=high,
        n_trials=n_trials,
        objective=objective,
        direction=direction,
        baselines=baselines,
        sampler=sampler,
        seed=int(block.get("seed", 0)),
        pruning=bool(block.get("pruning", False)),
        trial_seed=trial_seed,
    )


def check_report_seeds(spec: SearchSpec, seeds: int) -> None:
    """Refuse a comparison whose seeds include the trials' (the best row would be reported
    on the very run that chose it)."""
    if spec.trial_seed < seeds:
        raise SearchError(
            f"search.trial_seed is {spec.trial_seed}, one of the comparison's seeds "
            f"0..{seeds - 1}: the best weights must be reported on seeds the search never "
            f"used; set search.trial_seed to {seeds} or more (default {TRIAL_SEED})"
        )


def _val_as_test(metrics: Mapping[str, float]) -> dict[str, float]:
    # Δm's columns are keyed by test/ metrics: the same names on validation values.
    return {"test/" + key[4:]: value for key, value in metrics.items() if key.startswith("val/")}


@dataclass
class Objective:
    """Turns a trial's validation metrics into the number the study optimises."""

    spec: SearchSpec
    baselines: dict[str, float] = field(default_factory=dict)
    columns: list = field(default_factory=list)

    def set_baselines(self, results: Sequence[dict[str, Any]]) -> None:
        """Validation metrics of the single-task runs: the Δm reference."""
        as_test = [{**r, "test": _val_as_test(r["val"])} for r in results]
        columns = {c.key: c for r in as_test for c in declared_columns(r)}
        self.columns = list(columns.values())
        self.baselines = single_task_baselines(as_test, self.columns)

    def pruning_terms(self) -> list[list[Any]]:
        """``[val key, single-task value, higher is better]`` of each Δm metric."""
        return [
            ["val/" + c.key[len("test/") :], self.baselines[c.key], c.higher_is_better]
            for c in delta_columns(self.columns)
            if c.key in self.baselines
        ]

    def __call__(self, result: Mapping[str, Any]) -> float:
        if self.spec.objective == "delta_m":
            return delta_m(_val_as_test(result["val"]), self.baselines, self.columns)
        value = result["val"].get(self.spec.objective)
        return math.nan if value is None else float(value)


def _sampler(spec: SearchSpec):
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=spec.seed, scramble=True)
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(8, spec.n_trials))


def open_study(spec: SearchSpec, name: str, out_dir: Path, storage: str | None = None):
    """The study, created or loaded from its journal file (or ``storage`` URL)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None:
        (out_dir / SEARCH_DIR).mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(out_dir / SEARCH_DIR / JOURNAL_FILE))
        storage_obj: Any = JournalStorage(backend)
    else:
        storage_obj = storage
    pruner = make_pruner() if spec.pruning else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=name,
        storage=storage_obj,
        sampler=_sampler(spec),
        pruner=pruner,
        direction=spec.direction,
        load_if_exists=True,
    )


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's worker: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _trial_row(number: int, weights: Mapping[str, float]) -> Row:
    label = " / ".join(f"{t} {w:g}" for t, w in weights.items())
    return Row(name=f"trial {number:03d} ({label})", weights=dict(weights))


def _trial_run(out_dir: Path, number: int, weights: dict[str, float], seed: int) -> PlannedRun:
    folder = out_dir / SEARCH_DIR / "trials" / f"trial{number:03d}" / f"seed{seed}"
    return PlannedRun(_trial_row(number, weights), seed, folder)


def baseline_runs(experiment: Experiment, spec: SearchSpec, out_dir: Path) -> list[PlannedRun]:
    """The ``delta_m`` baselines' runs on the trials' seed, in ``search/baselines/``."""
    rows = [r for r in experiment.rows if r.name in spec.baselines]
    seed = spec.trial_seed
    folder = out_dir / SEARCH_DIR / BASELINE_DIR
    return [PlannedRun(row, seed, folder / row.slug / f"seed{seed}") for row in rows]


def check_selection(experiment: Experiment, spec: SearchSpec, extra_args: Sequence[str]) -> None:
    """Refuse a search whose trials' validation images are images the comparison reports."""
    trial = _trial_row(0, dict.fromkeys(spec.tasks, 1.0 / len(spec.tasks)))
    try:
        check([search_selection(experiment, trial, extra_args)])
    except SelectionError as error:
        raise SearchError(str(error)) from None


def run_search(
    experiment: Experiment,
    spec: SearchSpec,
    out_dir: Path,
    executor,
    parallel: int,
    extra_args: Sequence[str] = (),
    storage: str | None = None,
    echo: Callable[[str], None] = print,
) -> Any:
    """Run the study until it has ``spec.n_trials`` finished trials; returns the study.

    Refused first (`SearchError`) when the trials would select on images the
    comparison reports (`check_selection`). The baselines of a ``delta_m`` objective
    (the ``baselines`` rows on ``trial_seed``, scored on validation only) are run next,
    through the same executor.
    """
    import optuna
    from optuna.trial import TrialState

    if parallel < 1:
        raise SearchError(f"--parallel {parallel}: at least 1 trial at a time")
    check_selection(experiment, spec, extra_args)
    objective = Objective(spec)
    if spec.objective == "delta_m":
        runs = baseline_runs(experiment, spec, out_dir)
        jobs = [
            RunJob(
                experiment.name,
                run,
                run_args(experiment, run, list(extra_args), wandb=False),
                spec_extra={"skip_test": True},
            )
            for run in runs
            if not run.done
        ]
        echo(
            f"search {experiment.name}: {len(runs)} baseline run(s) on the trials' seed "
            f"{spec.trial_seed}, {len(runs) - len(jobs)} already finished"
        )
        _, failed = executor.run_all(jobs, echo)
        if failed:
            raise SearchError(
                f"the baseline run(s) {[r.row.name for r in failed]} failed; "
                "the delta_m objective needs them (see their failed.json)"
            )
        results = [
            json.loads((run.run_dir / "result.json").read_text(encoding="utf-8")) for run in runs
        ]
        objective.set_baselines(results)
    study = open_study(spec, experiment.name, out_dir, storage)
    journal = storage or str(out_dir / SEARCH_DIR / JOURNAL_FILE)
    in_flight: dict[int, tuple[Any, Any]] = {}
    start = time.perf_counter()

    def finished() -> int:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return len(study.get_trials(deepcopy=False, states=states))

    def conclude(trial, handle) -> None:
        if (handle.run.run_dir / PRUNED_FILE).is_file():
            study.tell(trial, state=TrialState.PRUNED)
            echo(f"  trial {trial.number:3d}: {trial.user_attrs.get('weights', '')} pruned")
            return
        error = handle.error()
        if error is None:
            result = json.loads((handle.run.run_dir / "result.json").read_text())
            value = objective(result)
            for key, metric in result["val"].items():
                trial.set_user_attr(key, metric)
            if math.isfinite(value):
                study.tell(trial, value)
                echo(
                    f"  trial {trial.number:3d}: {trial.user_attrs.get('weights', '')} -> "
                    f"{spec.objective} {value:.4g} | {duration(time.perf_counter() - start)}"
                )
                return
            error = f"non-finite objective {value}"
        study.tell(trial, state=TrialState.FAIL)
        echo(f"  trial {trial.number:3d} failed: {error}")

    # Trials this machine left running when it was interrupted: finish or drop them.
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = frozen.user_attrs.get("worker", "")
        if _pid_alive(worker):
            continue
        trial = optuna.trial.Trial(study, frozen._trial_id)
        seed = frozen.user_attrs.get("seed", spec.trial_seed)
        run = _trial_run(out_dir, frozen.number, frozen.user_attrs["weights"], seed)
        handle = executor.attach(run) if hasattr(executor, "attach") else None
        if run.done or handle is None:
            conclude(trial, _Finished(run))
        else:
            trial.set_user_attr("worker", _worker())
            in_flight[frozen.number] = (trial, handle)
    echo(
        f"search {experiment.name}: {finished()}/{spec.n_trials} trials finished, "
        f"{len(in_flight)} attached, {parallel} at a time, {spec.sampler} sampler seed "
        f"{spec.seed}, objective {spec.objective} ({spec.direction}) on validation"
    )
    failures = 0
    try:
        while finished() + len(in_flight) < spec.n_trials or in_flight:
            while len(in_flight) < parallel and finished() + len(in_flight) < spec.n_trials:
                trial = study.ask()
                weights = spec.weights(trial)
                trial.set_user_attr("weights", weights)
                trial.set_user_attr("seed", spec.trial_seed)
                trial.set_user_attr("worker", _worker())
                run = _trial_run(out_dir, trial.number, weights, spec.trial_seed)
                args = run_args(experiment, run, list(extra_args), wandb=False)
                if spec.pruning:
                    args.append(pruning_callback(spec, objective, study, trial, run, journal))
                job = RunJob(experiment.name, run, args, spec_extra={"skip_test": True})
                in_flight[trial.number] = (trial, executor.start(job))
            ended = [n for n, (_, handle) in in_flight.items() if handle.poll()]
            if not ended:
                time.sleep(executor.poll_s)
                continue
            for number in ended:
                trial, handle = in_flight.pop(number)
                before = failures
                conclude(trial, handle)
                if study.trials[number].state == TrialState.FAIL:
                    failures += 1
                if failures > before and failures >= max(3, spec.n_trials // 2):
                    raise SearchError(
                        f"{failures} trials failed; see their run folders under "
                        f"{out_dir / SEARCH_DIR / 'trials'}"
                    )
    finally:
        for trial, handle in in_flight.values():
            if hasattr(handle, "process"):  # a local child dies with the search
                handle.stop()
                study.tell(trial, state=TrialState.FAIL)
    return study


def pruning_callback(spec: SearchSpec, objective, study, trial, run, storage: str) -> str:
    """The ``--trainer.callbacks+=`` argument that lets a trial report to the study."""
    callback = {
        "class_path": "mtlscene.experiments.pruning.TrialPruning",
        "init_args": {
            "storage": storage,
            "study": study.study_name,
            "trial_id": trial._trial_id,
            "run_dir": str(run.run_dir),
            "metric": None if spec.objective == "delta_m" else spec.objective,
            "terms": objective.pruning_terms() if spec.objective == "delta_m" else [],
        },
    }
    return f"--trainer.callbacks+={json.dumps(callback)}"


class _Finished:
    """A handle on a trial run that is not running any more."""

    def __init__(self, run: PlannedRun) -> None:
        self.run = run

    def poll(self) -> bool:
        return True

    def error(self) -> str | None:
        return None if self.run.done else "interrupted before it wrote a result"


def best_weights(study) -> dict[str, float]:
    """The weights of the study's best trial."""
    return dict(study.best_trial.user_attrs["weights"])


def comparison_experiment(
    experiment: Experiment, weights: Mapping[str, float], spec: SearchSpec | None = None
) -> Experiment:
    """The comparison: the best weights as the row ``search best``, then the learned rows,
    the other fixed rows, and the single-task baselines last, so that the rows being
    compared are trained first. Every row trains on the comparison's seeds, none of them
    the trials' seed."""
    best = Row(name=BEST_ROW, weights=dict(weights))
    baselines = set(spec.baselines) if spec is not None else set()
    rows = [r for r in experiment.rows if r.name != BEST_ROW]
    others = [r for r in rows if r.name not in baselines]
    ordered = [best] + [r for r in others if not r.is_fixed] + [r for r in others if r.is_fixed]
    ordered += [r for r in rows if r.name in baselines]
    return replace(experiment, rows=tuple(ordered))


def write_experiment_copy(experiment: Experiment, path: Path) -> Path:
    """The comparison as an experiment YAML (``summarize OUT`` reads it back)."""
    raw = yaml.safe_load(experiment.source.read_text(encoding="utf-8")) if experiment.source else {}
    raw = dict(raw or {})
    by_name = {r.get("name"): r for r in raw.get("rows") or []}
    best = next(r for r in experiment.rows if r.name == BEST_ROW)
    by_name[BEST_ROW] = {"name": BEST_ROW, "weights": dict(best.weights or {})}
    raw["rows"] = [by_name[row.name] for row in experiment.rows]
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def write_trials(study, spec: SearchSpec, path: Path) -> Path:
    """One line per trial: number, state, weights, objective, validation metrics."""
    rows = []
    for trial in study.trials:
        row = {"trial": trial.number, "state": trial.state.name, "objective": trial.value}
        row |= {f"weight/{t}": w for t, w in (trial.user_attrs.get("weights") or {}).items()}
        row |= {k: v for k, v in trial.user_attrs.items() if k.startswith("val/")}
        if trial.datetime_start and trial.datetime_complete:
            row["wall_time_s"] = round(
                (trial.datetime_complete - trial.datetime_start).total_seconds(), 1
            )
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_search_table(study, spec: SearchSpec, path: Path, top: int = 5) -> Path:
    """``search.md``: the study's settings, its best trials and the spread of the objective."""
    from optuna.trial import TrialState

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    reverse = spec.direction == "maximize"
    ranked = sorted(complete, key=lambda t: t.value, reverse=reverse)
    values = [t.value for t in complete]
    lines = [
        f"### Search of fixed weights over {', '.join(spec.tasks)} ({spec.space})",
        "",
        f"{len(complete)} complete trials of {len(study.trials)} ({spec.sampler} sampler, "
        f"seed {spec.seed}); objective {spec.objective} on the validation split, "
        f"{spec.direction}; training seed {spec.trial_seed} of every trial (the comparison "
        "retrains the best weights on other seeds and reports them on test).",
        "",
        "| rank | trial | " + " | ".join(f"w {t}" for t in spec.tasks) + " | objective |",
        "|" + "---|" * (len(spec.tasks) + 3),
    ]
    for rank, trial in enumerate(ranked[:top], start=1):
        weights = trial.user_attrs.get("weights", {})
        cells = [f"{weights.get(t, 0):.3f}" for t in spec.tasks]
        lines.append(
            f"| {rank} | {trial.number} | " + " | ".join(cells) + f" | {trial.value:.3f} |"
        )
    if len(values) > 1:
        lines += [
            "",
            f"Objective over the trials: best {ranked[0].value:.3f}, median "
            f"{statistics.median(values):.3f}, worst {ranked[-1].value:.3f}.",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def summarize_search(study, spec: SearchSpec, out_dir: Path) -> list[Path]:
    """The search's own outputs: trials.csv, search.md and its figures."""
    folder = out_dir / SEARCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        write_trials(study, spec, folder / TRIALS_FILE),
        write_search_table(study, spec, folder / "search.md"),
    ]
    written += plot_objective(study, spec, folder / "objective_by_trial.png")
    written += plot_weights(study, spec, folder / "weights_tried.png")
    return written
