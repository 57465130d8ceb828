"""One run of an experiment: a real ``fit`` then ``test`` in its own directory.

The runner starts each run as ``main([SPEC.json])`` of this module in a fresh process, so
a crash, a leak or a hung data loader of one run cannot touch the next one, and the run's
whole output lands in its ``run.log``. The run writes ``result.json`` when, and only when,
both stages finished.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"


def _scalars(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """Summary metrics (not per-class ones) of one stage as plain floats."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(f"{prefix}/") and key.count("/") <= 2 and "/loss/" not in key:
            out[key] = float(value)
    return out


def _tensor_values(values: Mapping[str, Any]) -> dict[str, float]:
    # Weights and sigmas are float32 tensors: keep the digits float32 has (0.1, not
    # 0.10000000149011612).
    return {name: float(f"{float(value):.7g}") for name, value in values.items()}


def _training_cost(trainer: Any) -> dict[str, Any] | None:
    """The run's cost (parameters, FLOPs per image, median batch time) that the model's
    TrainingCost callback measured during fit; None when it is not there."""
    from mtlscene.callbacks.training_cost import TrainingCost

    timer = next((c for c in trainer.callbacks if isinstance(c, TrainingCost)), None)
    return None if timer is None else timer.summary()


def _delete_checkpoints(run_dir: Path, spec: Mapping[str, Any]) -> None:
    if not spec.get("keep_checkpoints", False):
        # An experiment of a hundred runs would otherwise keep tens of GB of weights
        # that its results no longer need.
        for checkpoint in run_dir.rglob("*.ckpt"):
            checkpoint.unlink()


def execute(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fit and test one configuration; returns (and writes) the run's result.

    ``spec["resume_from"]``, when given, is a checkpoint the fit resumes from (a SLURM job
    requeued after a preemption), and ``spec["earlier_wall_time_s"]`` the seconds its
    earlier attempts took: the result's ``wall_time_s`` is the whole run's.
    ``spec["skip_test"]`` ends the run after fit (a search trial, whose objective is read on
    validation). Under DDP every rank trains and tests; only rank 0 writes the result.
    """
    from mtlscene.cli.main import build_cli

    run_dir = Path(spec["run_dir"])
    args = list(spec["args"])
    start = time.perf_counter() - float(spec.get("earlier_wall_time_s", 0.0))
    resume = ["--ckpt_path", str(spec["resume_from"])] if spec.get("resume_from") else []
    fit = build_cli(["fit", *args, *resume])
    checkpoint = fit.trainer.checkpoint_callback
    last = checkpoint.last_model_path if checkpoint is not None else ""
    if not last or not Path(last).is_file():
        raise RuntimeError(
            f"fit wrote no last checkpoint in {run_dir}: the run's config needs a checkpoint "
            "callback with save_last: true"
        )
    weighting = fit.model.weighting
    result: dict[str, Any] = {
        "experiment": spec["experiment"],
        "row": spec["row"],
        "seed": spec["seed"],
        "tasks": list(fit.model.heads),
        # The columns the heads declared: the summary's table follows them.
        "table_metrics": {
            group: [metric.as_dict() for metric in metrics]
            for group, metrics in fit.model.table_metrics().items()
        },
        "val": _scalars(fit.trainer.callback_metrics, "val"),
        "sigma": _tensor_values(weighting.sigmas()),
        "weight": _tensor_values(weighting.weights()),
        "global_step": int(fit.trainer.global_step),
        "log_dir": str(fit.trainer.log_dir),
    }
    cost = _training_cost(fit.trainer)
    if cost is not None:
        result["cost"] = cost
    if spec.get("skip_test"):
        # A search trial: its objective is read on validation, and the test split stays
        # unseen until the chosen weights are retrained and compared.
        result["wall_time_s"] = time.perf_counter() - start
        if fit.trainer.is_global_zero:
            (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
            _delete_checkpoints(run_dir, spec)
        return result
    test = build_cli(["test", *args, "--ckpt_path", last])
    result["test"] = _scalars(test.trainer.callback_metrics, "test")
    result["wall_time_s"] = time.perf_counter() - start
    if not all(math.isfinite(v) for v in result["sigma"].values()):
        raise FloatingPointError(f"non-finite final sigma {result['sigma']}")
    if not test.trainer.is_global_zero:
        return result
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    _delete_checkpoints(run_dir, spec)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m mtlscene.experiments.single_run SPEC.json")
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    sys.argv = sys.argv[:1]  # the CLI gets its arguments from the spec, not the command line
    execute(spec)


if __name__ == "__main__":
    main()
